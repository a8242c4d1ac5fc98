//! Gradient training of all cores at once: minibatches, Adam, cross-entropy or squared loss,
//! exact gradients from left/right partial contractions (no autodiff framework).
//!
//! With the label on site `c` and `l_k`, `r_k` the contractions of sites `< k` and `>= k` with
//! the features, `f^l(x) = sum l_c[a] phi_s A_c[a, s, l, b] r_{c+1}[b]`. Backpropagation runs
//! the same batched contractions outwards from the label site:
//!
//! ```text
//!   G_c = dLoss/dl_c,  G_k = M_k(x) G_{k+1},   dLoss/dA_k[a,s,b] = sum_n l_k[a] phi_s G_{k+1}[b]
//!   H_{c+1} = dLoss/dr_{c+1},  H_{k+1} = H_k M_k(x),  dLoss/dA_k[a,s,b] = sum_n H_k[a] phi_s r_{k+1}[b]
//! ```
//!
//! Every partial contraction is stored normalized per sample with its log-norm, so 196 or 784
//! sites neither underflow nor overflow; the scales are recombined per sample in `f64` only
//! where a gradient or an output is formed. Cost per batch: three GEMMs per site, `6 B N d D^2`
//! flops, about bond/2 times fewer than multiplying the `D x D` transfer matrices in a product
//! tree. A minibatch is cut into one contiguous slice per thread; each slice runs the whole pass
//! on its thread ([`pass`]: sequential small GEMMs in buffers kept from batch to batch) and the
//! slices' gradients are summed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tnml_core::SiteTensor;

use crate::collective::{agree, sum_count, sync_model, Collective, SingleProcess};
use rayon::prelude::*;

use crate::error::{MpsError, Result};
use crate::feature::SiteFeatures;
use crate::model::{check_training_data, Loss, MpsClassifier};
use crate::observe::{EpochObserver, EpochSummary};

mod pass;
use pass::{Chain, Shape, SliceOutcome, Workspace};

/// Settings of the gradient trainer.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per minibatch.
    pub batch_size: usize,
    /// Adam step size.
    pub learning_rate: f64,
    /// The loss.
    pub loss: Loss,
    /// Seed of the minibatch order.
    pub seed: u64,
    /// How the step size changes over the training.
    pub schedule: LrSchedule,
    /// Augmentation: every epoch, each training image is translated by up to `shift` pixels in
    /// each direction (uniform, drawn afresh per epoch and image; white fill). 0: none.
    pub shift: usize,
}

/// The translation of training image `index` (of the whole set) in `epoch`: uniform in
/// `[-shift, shift]^2`, a function of `(seed, epoch, index)` alone, so that every rank of a
/// sharded run draws the same shift for the same image.
fn image_shift(seed: u64, epoch: usize, index: usize, shift: usize) -> (i32, i32) {
    // splitmix64 of the three
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut next = || {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    let span = 2 * shift as u64 + 1;
    let draw = |v: u64| (v % span) as i32 - shift as i32;
    (draw(next()), draw(next()))
}

/// Step size over the training: constant, or a cosine decay from the learning rate to 0 over
/// all steps (`lr_t = lr (1 + cos(pi t / T)) / 2` at step `t` of `T`), which lets Adam settle
/// into a minimum instead of rattling around it at the last epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The learning rate throughout.
    #[default]
    Constant,
    /// Cosine decay to 0 at the last step.
    Cosine,
}

impl LrSchedule {
    /// The step size of step `t` (from 0) of `total`.
    pub fn rate(self, lr: f64, t: usize, total: usize) -> f64 {
        match self {
            Self::Constant => lr,
            Self::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / total.max(1) as f64).cos()),
        }
    }
}

impl GradientConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// Zero epochs or batch size, a non-positive learning rate.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(MpsError::invalid("epochs", 0, "it must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(MpsError::invalid("batch size", 0, "it must be at least 1"));
        }
        if self.shift > 64 {
            return Err(MpsError::invalid(
                "shift",
                self.shift,
                "it must be at most 64 pixels",
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(MpsError::invalid(
                "learning rate",
                self.learning_rate,
                "it must be positive and finite",
            ));
        }
        Ok(())
    }
}

/// The trainer's state between batches: one [`Workspace`] per thread and the model in `f32`.
#[derive(Debug, Default)]
struct Passes {
    work: Vec<Workspace>,
    sites: Vec<Vec<f32>>,
    shapes: Vec<Shape>,
}

/// Samples per slice below which a batch is not split further over threads.
const MIN_SLICE: usize = 16;

impl Passes {
    /// Mean loss, gradients (`f64`, each site's layout) and wrong predictions of the samples
    /// `idx` of `feats` (labels indexed like `feats`), each thread taking a contiguous slice;
    /// `batch` is the size of the whole minibatch the mean is over.
    fn run(
        &mut self,
        model: &MpsClassifier,
        feats: &SiteFeatures,
        labels: &[usize],
        idx: &[usize],
        loss: Loss,
        batch: usize,
    ) -> (f64, Vec<Vec<f64>>, usize) {
        self.sites.resize_with(model.sites.len(), Vec::new);
        for (dst, site) in self.sites.iter_mut().zip(&model.sites) {
            dst.clear();
            dst.extend(site.data().iter().map(|&x| x as f32));
        }
        self.shapes.clear();
        self.shapes
            .extend(model.sites.iter().map(|s| (s.left(), s.phys(), s.right())));
        let slices = rayon::current_num_threads()
            .min(idx.len().div_ceil(MIN_SLICE))
            .max(1);
        let per = idx.len().div_ceil(slices).max(1);
        self.work.resize_with(slices, Workspace::default);
        let chain = Chain {
            sites: &self.sites,
            shapes: &self.shapes,
            label_site: model.label_site,
            labels: model.num_labels,
        };
        let decision = loss.decision();
        let outcomes: Vec<SliceOutcome> = self
            .work
            .par_iter_mut()
            .zip(idx.par_chunks(per))
            .map(|(w, ids)| w.run(&chain, feats, ids, labels, loss, decision, batch))
            .collect();
        let loss_sum: f64 = outcomes.iter().map(|o| o.loss_sum).sum();
        let wrong = outcomes.iter().map(|o| o.wrong).sum();
        if !loss_sum.is_finite() {
            return (loss_sum, Vec::new(), wrong);
        }
        let used = outcomes.len();
        let grads = (0..self.sites.len())
            .map(|k| {
                let mut g: Vec<f64> = self.work[0].grads[k].iter().map(|&v| f64::from(v)).collect();
                for w in &self.work[1..used] {
                    g.iter_mut()
                        .zip(&w.grads[k])
                        .for_each(|(a, &b)| *a += f64::from(b));
                }
                g
            })
            .collect();
        (loss_sum / batch.max(1) as f64, grads, wrong)
    }
}

/// Loss, gradients (one `f64` vector per site, the site's layout) and wrong predictions of a batch.
///
/// # Errors
/// Features or labels that do not fit the model.
pub fn loss_and_gradients(
    model: &MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    loss: Loss,
) -> Result<(f64, Vec<Vec<f64>>, usize)> {
    check_training_data(model, feats, labels)?;
    let idx: Vec<usize> = (0..feats.samples).collect();
    Ok(Passes::default().run(model, feats, labels, &idx, loss, feats.samples))
}

/// Mean loss, gradients and wrong predictions of the minibatch `idx` (indices into the whole
/// set), from the samples of it this rank holds (`offset..offset + feats.samples`) and summed
/// over the ranks: each rank's mean is weighted by its share of the batch before the sum.
#[allow(clippy::too_many_arguments)]
fn batch_gradients(
    passes: &mut Passes,
    model: &MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    idx: &[usize],
    offset: usize,
    loss: Loss,
    comm: &dyn Collective,
) -> Result<(f64, Vec<Vec<f64>>, usize)> {
    let mine: Vec<usize> = idx
        .iter()
        .filter_map(|&i| i.checked_sub(offset).filter(|&j| j < feats.samples))
        .collect();
    let (loss, mut grads, wrong) = if mine.is_empty() {
        let zeros = model.sites.iter().map(|s| vec![0.0; s.len()]).collect();
        (0.0, zeros, 0)
    } else {
        passes.run(model, feats, labels, &mine, loss, mine.len())
    };
    if comm.size() == 1 {
        return Ok((loss, grads, wrong));
    }
    // a non-finite loss returns no gradients: send zeros, the summed loss stays non-finite
    if grads.is_empty() {
        grads = model.sites.iter().map(|s| vec![0.0; s.len()]).collect();
    }
    let share = mine.len() as f64 / idx.len() as f64;
    let mut flat: Vec<f64> = grads.iter().flatten().map(|g| g * share).collect();
    flat.push(loss * share);
    comm.sum_f64(&mut flat);
    let loss = flat.pop().unwrap_or(f64::NAN);
    let mut rest = flat.as_slice();
    for g in &mut grads {
        let (head, tail) = rest.split_at(g.len());
        g.copy_from_slice(head);
        rest = tail;
    }
    Ok((loss, grads, sum_count(comm, wrong)))
}

/// The order in which the trainer visits the samples, epoch after epoch: a fresh shuffle of
/// `0..total` per epoch from one generator seeded with `seed` (the minibatches are consecutive
/// chunks of it). Public so that a reference can replay the trainer's exact minibatches.
#[derive(Debug)]
pub struct EpochOrders {
    total: usize,
    rng: StdRng,
}

impl EpochOrders {
    /// Orders of `total` samples from `seed` (the trainer's `GradientConfig::seed`).
    pub fn new(total: usize, seed: u64) -> Self {
        Self {
            total,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next epoch's order.
    pub fn next_epoch(&mut self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.total).collect();
        order.shuffle(&mut self.rng);
        order
    }
}

/// Largest weight magnitude the gradient trainer accepts: sites start near the identity (entries
/// of order 1) and a step of Adam moves each entry by about the learning rate, so a weight past
/// this has diverged long before it overflows.
pub const MAX_WEIGHT: f64 = 1e8;

/// Trains every core with Adam on minibatches (bond dimensions stay as they are).
///
/// On a non-finite loss, or a step that would take a weight past [`MAX_WEIGHT`] (or to a
/// non-finite value), the step is not applied and [`MpsError::Diverged`] names the epoch and
/// batch: the model is left at its last good state.
///
/// # Errors
/// Invalid config, data that do not fit, divergence.
pub fn train_gradient(
    model: &mut MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    config: &GradientConfig,
    observer: &mut dyn EpochObserver,
) -> Result<Vec<EpochSummary>> {
    train_gradient_sharded(model, feats, labels, config, observer, &SingleProcess)
}

/// [`train_gradient`] with the training set sharded over the ranks of `comm` (data-parallel
/// minibatches): `feats` / `labels` are this rank's contiguous shard of the whole set, in rank
/// order ([`crate::collective::shard_range`]). Every rank draws the same minibatch order over
/// the whole set, contracts the batch's samples it holds, and the batch gradient is summed over
/// the ranks (one allreduce of all cores' gradients per batch), so every rank applies the same
/// Adam step to the same model: the training of one process on the union of the shards, up to
/// the order of additions. With [`SingleProcess`] this is `train_gradient`.
///
/// # Errors
/// As [`train_gradient`].
pub fn train_gradient_sharded(
    model: &mut MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    config: &GradientConfig,
    observer: &mut dyn EpochObserver,
    comm: &dyn Collective,
) -> Result<Vec<EpochSummary>> {
    config.validate()?;
    check_training_data(model, feats, labels)?;
    sync_model(comm, model)?;
    model.set_decision(config.loss.decision());
    // this rank's samples are offset..offset + n of the whole set
    let n_local = feats.samples;
    let mut counts = vec![0.0; comm.size()];
    counts[comm.rank()] = n_local as f64;
    comm.sum_f64(&mut counts);
    let offset: usize = counts[..comm.rank()].iter().map(|&c| c as usize).sum();
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut m: Vec<Vec<f64>> = model.sites.iter().map(|s| vec![0.0; s.len()]).collect();
    let mut v = m.clone();
    let mut step = 0i32;
    let mut orders = EpochOrders::new(total, config.seed);
    let total_steps = config.epochs * total.div_ceil(config.batch_size);
    let mut passes = Passes::default();
    let mut out = Vec::new();
    for epoch in 1..=config.epochs {
        let t0 = std::time::Instant::now();
        let order = orders.next_epoch();
        let shifted;
        let feats = if config.shift > 0 {
            let shifts: Vec<(i32, i32)> = (0..n_local)
                .map(|i| image_shift(config.seed, epoch, offset + i, config.shift))
                .collect();
            shifted = feats.shifted(model.image(), &shifts);
            &shifted
        } else {
            feats
        };
        let batches: Vec<&[usize]> = order.chunks(config.batch_size).collect();
        let (mut loss_sum, mut wrong) = (0.0, 0);
        for (bi, idx) in batches.iter().enumerate() {
            let (loss, grads, w) =
                batch_gradients(&mut passes, model, feats, labels, idx, offset, config.loss, comm)?;
            let diverged = |what: String| MpsError::Diverged {
                epoch,
                batch: bi + 1,
                what,
            };
            if !loss.is_finite() {
                return Err(diverged(format!("the loss is {loss}; lower --lr")));
            }
            step += 1;
            let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
            // the step is computed aside and applied only if every weight stays in range
            let lr = config
                .schedule
                .rate(config.learning_rate, step as usize - 1, total_steps);
            let updated: Vec<Vec<f64>> = (
                grads.par_iter(),
                m.par_iter_mut(),
                v.par_iter_mut(),
                model.sites.par_iter(),
            )
                .into_par_iter()
                .map(|(g, mk, vk, site)| {
                    let mut data = site.data().to_vec();
                    for (((x, gi), mi), vi) in data.iter_mut().zip(g).zip(mk.iter_mut()).zip(vk.iter_mut()) {
                        *mi = b1 * *mi + (1.0 - b1) * gi;
                        *vi = b2 * *vi + (1.0 - b2) * gi * gi;
                        *x -= lr * (*mi / c1) / ((*vi / c2).sqrt() + eps);
                    }
                    data
                })
                .collect();
            for (k, data) in updated.iter().enumerate() {
                if let Some(x) = data.iter().find(|x| !x.is_finite() || x.abs() > MAX_WEIGHT) {
                    return Err(diverged(format!(
                        "a weight of site {k} became {x:e} (beyond {MAX_WEIGHT:e}); lower --lr"
                    )));
                }
            }
            for (k, data) in updated.into_iter().enumerate() {
                let s = &model.sites[k];
                model.sites[k] = SiteTensor::new(s.left(), s.phys(), s.right(), data)?;
            }
            loss_sum += loss * idx.len() as f64;
            wrong += w;
            if agree(comm, observer.on_batch(epoch, bi + 1, batches.len(), loss)).is_break() {
                return Ok(out);
            }
        }
        let summary = EpochSummary {
            epoch,
            loss: loss_sum / total as f64,
            train_error: wrong as f64 / total as f64,
            seconds: t0.elapsed().as_secs_f64(),
        };
        let flow = agree(comm, observer.on_epoch(&summary, model));
        out.push(summary);
        if flow.is_break() {
            break;
        }
    }
    Ok(out)
}
