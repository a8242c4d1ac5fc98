//! The seam between the gradient trainer's loop and the device its hot operations run on.
//!
//! The loop ([`super::train_gradient_sharded`]) owns what is the same everywhere: the epoch
//! order, the schedule, the augmentation, the sum over ranks, divergence reports and the
//! observer. An engine owns the model's cores, Adam's moments and the batch's gradients where
//! its device keeps them, and does the three hot steps:
//!
//! ```text
//!   set_features(phi)          the epoch's features (shifted when augmenting), resident
//!   gradients(idx, B)          forward + backward over the samples idx: sum of losses, wrong,
//!                              dLoss/dA_k of the batch mean (divided by B, the whole batch)
//!   adam_step(lr, t)           m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
//!                              A -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
//! ```
//!
//! [`CpuEngine`] runs them on rayon's threads ([`super::pass`], blocks of the batch, then the
//! gradients site by site, see [`block_ranges`]); the CUDA engine
//! (`cuda` feature) on one GPU. Both give the same model up to `f32` rounding.

use std::ops::Range;

use rayon::prelude::*;
use tnml_core::SiteTensor;

use super::factors::BatchFactors;
use super::pass::{BlockOutcome, Chain, Shape, Workspace};
use crate::error::Result;
use crate::feature::SiteFeatures;
use crate::model::{Loss, MpsClassifier};

/// Adam's constants (Kingma & Ba's defaults, as in PyTorch).
pub(crate) const ADAM_BETA1: f64 = 0.9;
pub(crate) const ADAM_BETA2: f64 = 0.999;
pub(crate) const ADAM_EPS: f64 = 1e-8;

/// What the samples of one minibatch on this rank gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BatchOutcome {
    /// Sum of the samples' losses (not the mean).
    pub loss_sum: f64,
    /// Wrong predictions among them.
    pub wrong: usize,
}

/// A step that would take weight `value` of `site` out of range; the model was left unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BadWeight {
    pub site: usize,
    pub value: f64,
}

/// The hot operations of the gradient trainer on one device (see the module docs).
pub(crate) trait GradientEngine {
    /// Makes `feats` (same samples and sites as the training set) the features of the next
    /// batches.
    fn set_features(&mut self, feats: SiteFeatures) -> Result<()>;

    /// Loss sum and wrong predictions of the samples `idx` (indices into the features), and
    /// their gradients divided by `batch` kept in the engine. With a non-finite loss sum the
    /// gradients are unspecified.
    fn gradients(&mut self, idx: &[usize], batch: usize) -> Result<BatchOutcome>;

    /// The gradients of the last batch, all sites concatenated (for the sum over ranks).
    fn export_gradients(&mut self) -> Result<Vec<f64>>;

    /// Replaces the gradients by `flat` (the sum over ranks, same layout as exported).
    fn import_gradients(&mut self, flat: &[f64]) -> Result<()>;

    /// One Adam step at rate `lr`, step number `t` (from 1). If a weight would become
    /// non-finite or exceed `max_weight` in magnitude, nothing changes and the first such
    /// weight is returned.
    fn adam_step(&mut self, lr: f64, t: i32, max_weight: f64) -> Result<Option<BadWeight>>;

    /// Writes the engine's cores into `model` (same shapes).
    fn store(&mut self, model: &mut MpsClassifier) -> Result<()>;
}

/// Rows a block of a batch aims at (see [`block_ranges`]).
const BLOCK_ROWS: usize = 12;

/// The blocks a batch of `n` samples is cut into: `K = 2^floor(log2(n / BLOCK_ROWS))`
/// contiguous ranges (at least one) whose sizes differ by at most one (batch 100: 8 blocks of
/// 12 or 13). `K` depends on `n` alone, never on the thread count, so the results are the same
/// bit for bit on 1 or 64 threads; it is a power of two, so that 2, 4, 8 or 16 threads share
/// the blocks evenly. At most `K` threads work on a batch's chains; the gradient products then
/// split by site over all threads.
pub fn block_ranges(n: usize) -> Vec<Range<usize>> {
    let mut k = 1;
    while 2 * k * BLOCK_ROWS <= n {
        k *= 2;
    }
    let (base, extra) = (n / k, n % k);
    let mut start = 0;
    (0..k)
        .map(|b| {
            let len = base + usize::from(b < extra);
            start += len;
            start - len..start
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// The gradient trainer's hot operations on the CPU, in two parallel phases per batch:
/// 1. the batch is cut into [`block_ranges`] and each block runs the chains on one rayon task
///    ([`Workspace`]), keeping the two factors of every site's gradient;
/// 2. site by site (parallel over sites, fused into Adam's step), the gradient is one product
///    over the whole batch's factors ([`super::factors`]), in `f64`.
///
/// So the gradient is written once per site and batch (not once per thread), and is the same
/// whatever the thread count. The model and Adam's moments are `f64`.
#[derive(Debug)]
pub(crate) struct CpuEngine<'a> {
    feats: Option<SiteFeatures>,
    base: &'a SiteFeatures,
    labels: &'a [usize],
    loss: Loss,
    label_site: usize,
    labels_count: usize,
    shapes: Vec<Shape>,
    /// The cores (`f64`) and their `f32` copy for the passes.
    sites: Vec<Vec<f64>>,
    sites_f32: Vec<Vec<f32>>,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
    /// The next weights, written by Adam and swapped in when every one is in range.
    staged: Vec<Vec<f64>>,
    /// The batch gradient as one `f64` vector per site, only when it came from outside
    /// (`import_gradients`, the sum over ranks); else it is formed from the blocks inside Adam.
    imported: Option<Vec<Vec<f64>>>,
    /// The last batch's gradient factors, and the blocks' workspaces.
    factors: BatchFactors,
    work: Vec<Workspace>,
}

impl<'a> CpuEngine<'a> {
    /// An engine over `model`'s cores, the training features `feats` and `labels`.
    pub(crate) fn new(
        model: &MpsClassifier,
        feats: &'a SiteFeatures,
        labels: &'a [usize],
        loss: Loss,
    ) -> Self {
        let sites: Vec<Vec<f64>> = model.sites.iter().map(|s| s.data().to_vec()).collect();
        let zeros: Vec<Vec<f64>> = sites.iter().map(|s| vec![0.0; s.len()]).collect();
        Self {
            feats: None,
            base: feats,
            labels,
            loss,
            label_site: model.label_site,
            labels_count: model.num_labels,
            shapes: model
                .sites
                .iter()
                .map(|s| (s.left(), s.phys(), s.right()))
                .collect(),
            sites_f32: sites
                .iter()
                .map(|s| s.iter().map(|&x| x as f32).collect())
                .collect(),
            sites,
            m: zeros.clone(),
            v: zeros.clone(),
            staged: zeros,
            imported: None,
            factors: BatchFactors::default(),
            work: Vec::new(),
        }
    }
}

impl GradientEngine for CpuEngine<'_> {
    fn set_features(&mut self, feats: SiteFeatures) -> Result<()> {
        self.feats = Some(feats);
        Ok(())
    }

    fn gradients(&mut self, idx: &[usize], batch: usize) -> Result<BatchOutcome> {
        let feats = self.feats.as_ref().unwrap_or(self.base);
        let blocks = block_ranges(idx.len());
        if self.work.len() < blocks.len() {
            self.work.resize_with(blocks.len(), Workspace::default);
        }
        let chain = Chain {
            sites: &self.sites_f32,
            shapes: &self.shapes,
            label_site: self.label_site,
            labels: self.labels_count,
        };
        let (loss, labels) = (self.loss, self.labels);
        let decision = loss.decision();
        let mut parts = self.factors.split(&self.shapes, &blocks);
        let outcomes: Vec<BlockOutcome> = self.work[..blocks.len()]
            .par_iter_mut()
            .zip(parts.par_iter_mut())
            .zip(blocks.par_iter())
            .map(|((w, f), r)| w.run(&chain, feats, &idx[r.clone()], labels, loss, decision, batch, f))
            .collect();
        drop(parts);
        let loss_sum: f64 = outcomes.iter().map(|o| o.loss_sum).sum();
        let wrong = outcomes.iter().map(|o| o.wrong).sum();
        // the factors stay where they are: Adam forms the gradients site by site
        if outcomes.iter().all(|o| o.loss_sum.is_finite()) {
            self.factors.written(idx.len());
        }
        self.imported = None;
        Ok(BatchOutcome { loss_sum, wrong })
    }

    fn export_gradients(&mut self) -> Result<Vec<f64>> {
        if let Some(g) = &self.imported {
            return Ok(g.concat());
        }
        let per_site: Vec<Vec<f64>> = (0..self.sites.len())
            .into_par_iter()
            .map_init(Vec::new, |tmp, k| {
                let mut g = vec![0.0; self.sites[k].len()];
                self.factors.site_gradient(k, self.shapes[k], tmp, &mut g);
                g
            })
            .collect();
        Ok(per_site.concat())
    }

    fn import_gradients(&mut self, flat: &[f64]) -> Result<()> {
        let mut rest = flat;
        let mut grads = Vec::with_capacity(self.sites.len());
        for s in &self.sites {
            let (head, tail) = rest.split_at(s.len());
            grads.push(head.to_vec());
            rest = tail;
        }
        self.imported = Some(grads);
        Ok(())
    }

    fn adam_step(&mut self, lr: f64, t: i32, max_weight: f64) -> Result<Option<BadWeight>> {
        let (b1, b2, eps) = (ADAM_BETA1, ADAM_BETA2, ADAM_EPS);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        let (factors, imported, shapes) = (&self.factors, &self.imported, &self.shapes);
        // one pass per site, parallel over sites: the gradient formed from the blocks (in f64)
        // or taken from the import, the moments updated in place, the new weights written
        // aside and checked
        let bad = (&self.sites, &mut self.staged, &mut self.m, &mut self.v)
            .into_par_iter()
            .enumerate()
            .map_init(Vec::new, |tmp, (k, (w, staged, m, v))| {
                // the gradient into `staged` first (a site fits in cache), then the step over it
                match imported {
                    Some(g) => staged.copy_from_slice(&g[k]),
                    None => factors.site_gradient(k, shapes[k], tmp, staged),
                }
                // branch-free, so that it vectorizes; the range check is a second pass
                for (((x, &wi), mi), vi) in staged.iter_mut().zip(w).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = *x;
                    *mi = b1 * *mi + (1.0 - b1) * g;
                    *vi = b2 * *vi + (1.0 - b2) * g * g;
                    *x = wi - lr * (*mi / c1) / ((*vi / c2).sqrt() + eps);
                }
                let bad = staged.iter().find(|x| !x.is_finite() || x.abs() > max_weight);
                bad.map(|&value| BadWeight { site: k, value })
            })
            .flatten()
            .min_by_key(|b| b.site);
        if bad.is_some() {
            return Ok(bad);
        }
        std::mem::swap(&mut self.sites, &mut self.staged);
        self.sites_f32
            .par_iter_mut()
            .zip(&self.sites)
            .for_each(|(low, w)| low.iter_mut().zip(w).for_each(|(a, &b)| *a = b as f32));
        Ok(None)
    }

    fn store(&mut self, model: &mut MpsClassifier) -> Result<()> {
        for (site, data) in model.sites.iter_mut().zip(&self.sites) {
            *site = SiteTensor::new(site.left(), site.phys(), site.right(), data.clone())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks cover the batch in order, differ in size by at most one, number a power of two
    /// of at least `BLOCK_ROWS` rows (but one block for a small batch), whatever the threads.
    #[test]
    fn blocks_depend_on_the_batch_alone() {
        for n in [0, 1, 11, 12, 23, 24, 50, 100, 101, 1000, 60_000] {
            let blocks = block_ranges(n);
            let covered: Vec<usize> = blocks.iter().flat_map(Clone::clone).collect();
            assert_eq!(covered, (0..n).collect::<Vec<_>>(), "n = {n}");
            if n == 0 {
                continue;
            }
            assert!(blocks.len().is_power_of_two(), "n = {n}: {} blocks", blocks.len());
            let (lo, hi) = blocks
                .iter()
                .fold((usize::MAX, 0), |(a, b), r| (a.min(r.len()), b.max(r.len())));
            assert!(hi - lo <= 1, "n = {n}: sizes {lo}..{hi}");
            assert!(blocks.len() == 1 || lo >= BLOCK_ROWS, "n = {n}: blocks of {lo}");
            assert!(
                hi < 2 * BLOCK_ROWS + 1 || n < 2 * BLOCK_ROWS,
                "n = {n}: blocks of {hi}"
            );
        }
        assert_eq!(block_ranges(100).len(), 8);
    }
}
