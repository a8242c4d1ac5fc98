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
//! [`CpuEngine`] runs them on rayon's threads ([`super::pass`]); the CUDA engine
//! (`cuda` feature) on one GPU. Both give the same model up to `f32` rounding.

use rayon::prelude::*;
use tnml_core::SiteTensor;

use super::pass::{Chain, Shape, SliceOutcome, Workspace};
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

/// Samples per slice below which a batch is not split further over threads.
const MIN_SLICE: usize = 16;

/// The gradient trainer's hot operations on the CPU: each minibatch is cut into one contiguous
/// slice per rayon thread, every slice runs the whole chain on its thread ([`Workspace`]), the
/// slices' gradients are summed in `f64`; the model and Adam's moments are `f64`.
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
    /// (`import_gradients`, the sum over ranks); else it is summed from the slices inside Adam.
    imported: Option<Vec<Vec<f64>>>,
    /// Slices of the last batch (their gradients are in `work[..slices]`).
    slices: usize,
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
            slices: 0,
            work: Vec::new(),
        }
    }
}

impl CpuEngine<'_> {
    /// `out = sum of the slices' gradients of site k` (in `f64`).
    fn sum_slices(&self, k: usize, out: &mut [f64]) {
        let used = &self.work[..self.slices];
        out.iter_mut().enumerate().for_each(|(i, o)| {
            *o = used.iter().map(|w| f64::from(w.grads[k][i])).sum();
        });
    }
}

impl GradientEngine for CpuEngine<'_> {
    fn set_features(&mut self, feats: SiteFeatures) -> Result<()> {
        self.feats = Some(feats);
        Ok(())
    }

    fn gradients(&mut self, idx: &[usize], batch: usize) -> Result<BatchOutcome> {
        let feats = self.feats.as_ref().unwrap_or(self.base);
        let slices = rayon::current_num_threads()
            .min(idx.len().div_ceil(MIN_SLICE))
            .max(1);
        let per = idx.len().div_ceil(slices).max(1);
        self.work.resize_with(slices, Workspace::default);
        let chain = Chain {
            sites: &self.sites_f32,
            shapes: &self.shapes,
            label_site: self.label_site,
            labels: self.labels_count,
        };
        let (loss, labels) = (self.loss, self.labels);
        let decision = loss.decision();
        let outcomes: Vec<SliceOutcome> = self
            .work
            .par_iter_mut()
            .zip(idx.par_chunks(per))
            .map(|(w, ids)| w.run(&chain, feats, ids, labels, loss, decision, batch))
            .collect();
        let loss_sum: f64 = outcomes.iter().map(|o| o.loss_sum).sum();
        let wrong = outcomes.iter().map(|o| o.wrong).sum();
        // the slices' gradients stay where they are: Adam sums them as it reads them
        self.slices = outcomes.len();
        self.imported = None;
        Ok(BatchOutcome { loss_sum, wrong })
    }

    fn export_gradients(&mut self) -> Result<Vec<f64>> {
        if let Some(g) = &self.imported {
            return Ok(g.concat());
        }
        let mut flat = Vec::with_capacity(self.sites.iter().map(Vec::len).sum());
        for k in 0..self.sites.len() {
            let start = flat.len();
            flat.resize(start + self.sites[k].len(), 0.0);
            self.sum_slices(k, &mut flat[start..]);
        }
        Ok(flat)
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
        let (work, slices, imported) = (&self.work, self.slices, &self.imported);
        // one pass per site, parallel over sites: the gradient summed from the slices (in f64)
        // or taken from the import, the moments updated in place, the new weights written
        // aside and checked; nothing is allocated
        let bad = (&self.sites, &mut self.staged, &mut self.m, &mut self.v)
            .into_par_iter()
            .enumerate()
            .filter_map(|(k, (w, staged, m, v))| {
                // the gradient into `staged` first (a site fits in cache), then the step over it
                match imported {
                    Some(g) => staged.copy_from_slice(&g[k]),
                    None => {
                        staged.iter_mut().for_each(|x| *x = 0.0);
                        for ws in &work[..slices] {
                            staged
                                .iter_mut()
                                .zip(&ws.grads[k])
                                .for_each(|(x, &g)| *x += f64::from(g));
                        }
                    }
                }
                let mut bad = None;
                for (((x, &wi), mi), vi) in staged.iter_mut().zip(w).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = *x;
                    *mi = b1 * *mi + (1.0 - b1) * g;
                    *vi = b2 * *vi + (1.0 - b2) * g * g;
                    *x = wi - lr * (*mi / c1) / ((*vi / c2).sqrt() + eps);
                    if bad.is_none() && (!x.is_finite() || x.abs() > max_weight) {
                        bad = Some(*x);
                    }
                }
                bad.map(|value| BadWeight { site: k, value })
            })
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
