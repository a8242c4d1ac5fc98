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
//! tree. The loop here is the same on every device; the passes and Adam run in an engine
//! ([`engine`]: the CPU's cuts each minibatch into blocks fixed by its size, runs each block's
//! chains on a thread ([`pass`]) and forms each site's gradient once over the whole batch
//! ([`factors`]), so results do not depend on the thread count; with the `cuda` feature, one
//! GPU runs them on the whole batch).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::collective::{agree, sum_count, sync_model, Collective, SingleProcess};

use crate::device::Device;
use crate::error::{MpsError, Result};
use crate::feature::{Move, SiteFeatures};
use crate::model::{check_training_data, Loss, MpsClassifier};
use crate::observe::{EpochObserver, EpochSummary};

#[cfg(feature = "cuda")]
mod cuda;
mod engine;
mod factors;
mod pass;
pub use engine::block_ranges;
use engine::{BatchOutcome, CpuEngine, GradientEngine};

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
    /// Augmentation: every epoch, each training image is mirrored left-right with probability
    /// 1/2 (drawn afresh per epoch and image; before the shift). For data whose classes do not
    /// change under a mirror (clothes, objects), not for digits.
    pub flip: bool,
    /// Where the passes and Adam run.
    pub device: Device,
}

/// The defaults of `tnml mps train --trainer gradient` and `MPSClassifier(trainer="gradient")`
/// alike: 10 epochs of Adam at 1e-3, constant, batches of 50, softmax cross-entropy, no
/// augmentation, seed 0, on the CPU. (The bond dimension is the sweep trainer's default,
/// [`crate::sweep::DEFAULT_MAX_BOND`].)
impl Default for GradientConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 50,
            learning_rate: 1e-3,
            loss: Loss::CrossEntropy,
            seed: 0,
            schedule: LrSchedule::Constant,
            shift: 0,
            flip: false,
            device: Device::Cpu,
        }
    }
}

/// The move of training image `index` (of the whole set) in `epoch`: a translation uniform in
/// `[-shift, shift]^2` and, with `flip`, a mirror with probability 1/2; a function of
/// `(seed, epoch, index)` alone, so that every rank of a sharded run draws the same move for
/// the same image (the translation is the first two draws, as before mirrors existed).
fn image_move(seed: u64, epoch: usize, index: usize, shift: usize, flip: bool) -> Move {
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
    let (dy, dx) = (draw(next()), draw(next()));
    Move {
        dy,
        dx,
        flip: flip && next() & 1 == 1,
    }
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
            return Err(MpsError::invalid("batch_size", 0, "it must be at least 1"));
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
                "learning_rate",
                self.learning_rate,
                "it must be positive and finite",
            ));
        }
        Ok(())
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
    let mut engine = CpuEngine::new(model, feats, labels, loss);
    let out = engine.gradients(&idx, feats.samples)?;
    if !out.loss_sum.is_finite() {
        return Ok((out.loss_sum, Vec::new(), out.wrong));
    }
    let flat = engine.export_gradients()?;
    let mut rest = flat.as_slice();
    let grads = model
        .sites
        .iter()
        .map(|s| {
            let (head, tail) = rest.split_at(s.len());
            rest = tail;
            head.to_vec()
        })
        .collect();
    Ok((out.loss_sum / feats.samples.max(1) as f64, grads, out.wrong))
}

/// Mean loss over the minibatch `idx` (indices into the whole set) and its wrong predictions,
/// from the samples of it this rank holds (`offset..offset + samples`), summed over the ranks;
/// the engine is left holding the batch gradient summed over the ranks.
fn batch_gradients(
    engine: &mut dyn GradientEngine,
    idx: &[usize],
    offset: usize,
    samples: usize,
    comm: &dyn Collective,
) -> Result<(f64, usize)> {
    let mine: Vec<usize> = idx
        .iter()
        .filter_map(|&i| i.checked_sub(offset).filter(|&j| j < samples))
        .collect();
    let out = if mine.is_empty() {
        // no sample of this batch here: zero gradients, nothing to add
        let zeros = vec![0.0; engine.export_gradients()?.len()];
        engine.import_gradients(&zeros)?;
        BatchOutcome {
            loss_sum: 0.0,
            wrong: 0,
        }
    } else {
        engine.gradients(&mine, idx.len())?
    };
    let batch = idx.len().max(1) as f64;
    if comm.size() == 1 {
        return Ok((out.loss_sum / batch, out.wrong));
    }
    let mut flat = if out.loss_sum.is_finite() {
        engine.export_gradients()?
    } else {
        // a non-finite loss sends zeros: the summed loss stays non-finite
        vec![0.0; engine.export_gradients()?.len()]
    };
    flat.push(out.loss_sum);
    comm.sum_f64(&mut flat);
    let loss_sum = flat.pop().unwrap_or(f64::NAN);
    engine.import_gradients(&flat)?;
    Ok((loss_sum / batch, sum_count(comm, out.wrong)))
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
    config.device.check_available()?;
    sync_model(comm, model)?;
    model.set_decision(config.loss.decision());
    match config.device {
        Device::Cpu => {
            let mut engine = CpuEngine::new(model, feats, labels, config.loss);
            run_epochs(&mut engine, model, feats, config, observer, comm)
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => {
            if comm.size() > 1 {
                return Err(MpsError::Device {
                    device: config.device.to_string(),
                    reason: format!(
                        "training on a GPU across {} ranks is not supported; run one process per GPU without MPI, or train on the CPU",
                        comm.size()
                    ),
                });
            }
            let mut engine = cuda::CudaEngine::new(ordinal, model, feats, labels, config.loss)?;
            run_epochs(&mut engine, model, feats, config, observer, comm)
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("check_available refuses cuda in this build"),
    }
}

/// The epochs of [`train_gradient_sharded`] on `engine` (which holds the model while it trains;
/// `model` is brought up to date after every epoch, on a stop and on divergence).
fn run_epochs(
    engine: &mut dyn GradientEngine,
    model: &mut MpsClassifier,
    feats: &SiteFeatures,
    config: &GradientConfig,
    observer: &mut dyn EpochObserver,
    comm: &dyn Collective,
) -> Result<Vec<EpochSummary>> {
    // this rank's samples are offset..offset + n of the whole set
    let n_local = feats.samples;
    let mut counts = vec![0.0; comm.size()];
    counts[comm.rank()] = n_local as f64;
    comm.sum_f64(&mut counts);
    let offset: usize = counts[..comm.rank()].iter().map(|&c| c as usize).sum();
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    let mut step = 0i32;
    let mut orders = EpochOrders::new(total, config.seed);
    let total_steps = config.epochs * total.div_ceil(config.batch_size);
    let mut out = Vec::new();
    for epoch in 1..=config.epochs {
        let t0 = std::time::Instant::now();
        let order = orders.next_epoch();
        if config.shift > 0 || config.flip {
            let moves: Vec<Move> = (0..n_local)
                .map(|i| image_move(config.seed, epoch, offset + i, config.shift, config.flip))
                .collect();
            engine.set_features(feats.moved(model.image(), &moves))?;
        }
        let batches: Vec<&[usize]> = order.chunks(config.batch_size).collect();
        let (mut loss_sum, mut wrong) = (0.0, 0);
        for (bi, idx) in batches.iter().enumerate() {
            let (loss, w) = batch_gradients(engine, idx, offset, n_local, comm)?;
            let diverged = |what: String| MpsError::Diverged {
                epoch,
                batch: bi + 1,
                what,
            };
            if !loss.is_finite() {
                engine.store(model)?;
                return Err(diverged(format!("the loss is {loss}; lower the learning rate")));
            }
            step += 1;
            let lr = config
                .schedule
                .rate(config.learning_rate, step as usize - 1, total_steps);
            if let Some(bad) = engine.adam_step(lr, step, MAX_WEIGHT)? {
                engine.store(model)?;
                return Err(diverged(format!(
                    "a weight of site {} became {:e} (beyond {MAX_WEIGHT:e}); lower the learning rate",
                    bad.site, bad.value
                )));
            }
            loss_sum += loss * idx.len() as f64;
            wrong += w;
            if agree(comm, observer.on_batch(epoch, bi + 1, batches.len(), loss)).is_break() {
                engine.store(model)?;
                return Ok(out);
            }
        }
        engine.store(model)?;
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
