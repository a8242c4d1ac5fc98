//! Supervised training of a [`Net`] on labelled images: SGD (momentum, Nesterov) or Adam, weight
//! decay, exponential or step learning-rate decay, per-epoch metrics, NaN detection.
//!
//! The loop reports through a [`TrainObserver`] (progress, checkpoints, entanglement tracking live
//! in the caller), and never prints.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tnml_data::transform::shuffled_indices;

use crate::error::{NnError, Result};
use crate::labeled::count_correct;
pub use crate::labeled::LabeledImages;
use crate::models::Net;

/// Optimizer choice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// SGD, with heavy-ball or Nesterov momentum when `momentum > 0`.
    Sgd {
        /// Momentum (0 = plain SGD).
        momentum: f64,
        /// Nesterov's variant.
        nesterov: bool,
    },
    /// Adam (beta 0.9, 0.999).
    Adam,
}

/// Learning rate as a function of the epoch (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// `lr`.
    Constant,
    /// `lr * gamma^epoch`.
    Exponential {
        /// Factor per epoch.
        gamma: f64,
    },
    /// `lr * gamma^(epoch / every)`.
    Step {
        /// Epochs per step.
        every: usize,
        /// Factor per step.
        gamma: f64,
    },
}

impl LrSchedule {
    /// The learning rate of `epoch` (0-based) for base rate `lr`.
    pub fn at(&self, lr: f64, epoch: usize) -> f64 {
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Exponential { gamma } => lr * gamma.powi(epoch as i32),
            LrSchedule::Step { every, gamma } => lr * gamma.powi((epoch / every.max(1)) as i32),
        }
    }
}

/// Training hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total epochs.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// Decay schedule.
    pub schedule: LrSchedule,
    /// L2 weight decay (gradient += wd * w), 0 for none.
    pub weight_decay: f64,
    /// Seed of the shuffling and augmentation.
    pub seed: u64,
    /// Fresh random augmentation each epoch: crop (pad 4) and horizontal flip for colour images
    /// (CIFAR), shifts of up to 2 pixels without flip for grey ones (digits).
    pub augment: bool,
    /// Images per data-parallel shard of a batch ([`crate::shards`]; 0: the whole batch in one
    /// pass, as runs written before shards had). The model depends on it, never on the thread
    /// count; a batch has at most as many busy cores as shards.
    #[serde(default)]
    pub shard_rows: usize,
}

impl TrainConfig {
    /// Plain Adam at a constant rate, no weight decay, no augmentation (fine-tuning, retraining).
    pub fn adam(epochs: usize, batch_size: usize, lr: f64, seed: u64) -> Self {
        Self {
            epochs,
            batch_size,
            optimizer: OptimizerKind::Adam,
            lr,
            schedule: LrSchedule::Constant,
            weight_decay: 0.0,
            seed,
            augment: false,
            shard_rows: 0,
        }
    }

    /// Checks the numbers.
    ///
    /// # Errors
    /// Zero epochs or batch size, a non-positive learning rate, a negative weight decay.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(NnError::Invalid {
                field: "epochs",
                reason: "0 epochs train nothing: use at least 1".into(),
            });
        }
        if self.batch_size == 0 {
            return Err(NnError::Invalid {
                field: "batch_size",
                reason: "0: it must be at least 1".into(),
            });
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(NnError::Invalid {
                field: "lr",
                reason: format!("{}: the learning rate must be positive and finite", self.lr),
            });
        }
        if self.weight_decay < 0.0 || !self.weight_decay.is_finite() {
            return Err(NnError::Invalid {
                field: "weight_decay",
                reason: format!("{}: the weight decay must be finite and >= 0", self.weight_decay),
            });
        }
        Ok(())
    }

    /// The burn optimizer.
    pub fn build_optimizer(&self) -> ModuleOptimizer {
        let wd = (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        match self.optimizer {
            OptimizerKind::Sgd { momentum, nesterov } => {
                let m = (momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(momentum)
                        .with_dampening(0.0)
                        .with_nesterov(nesterov)
                });
                SgdConfig::new().with_weight_decay(wd).with_momentum(m).init()
            }
            OptimizerKind::Adam => AdamConfig::new().with_weight_decay(wd).init(),
        }
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Training accuracy over the epoch (on the fly, with the weights as they were at each step).
    pub train_acc: f64,
    /// Test loss (if a test set was given).
    pub test_loss: Option<f64>,
    /// Test accuracy.
    pub test_acc: Option<f64>,
    /// Seconds of training (without evaluation).
    pub train_seconds: f64,
    /// Loss on the held-out validation images (runs with `--validation`; set by the observer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// Accuracy on the held-out validation images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_acc: Option<f64>,
}

/// Receives the training progress.
pub trait TrainObserver {
    /// After each step: `step` of `steps` in `epoch` (1-based), its loss.
    fn on_step(&mut self, _epoch: usize, _step: usize, _steps: usize, _loss: f32) {}
    /// After each epoch, with the model and optimizer (to checkpoint or analyse).
    ///
    /// # Errors
    /// Whatever the observer fails with stops the training.
    fn on_epoch(&mut self, _record: &EpochRecord, _net: &Net, _optim: &ModuleOptimizer) -> Result<()> {
        Ok(())
    }
}

/// An observer that does nothing.
pub struct Silent;
impl TrainObserver for Silent {}

/// Loss and accuracy of `net` on `data` (evaluation mode: BatchNorm running statistics, no dropout).
pub fn evaluate(net: &Net, data: &LabeledImages, batch_size: usize, device: &Device) -> (f64, f64) {
    let net = net.valid();
    let dev = device.clone().without_autodiff();
    let loss_fn = CrossEntropyLossConfig::new().init(&dev);
    let idx: Vec<usize> = (0..data.len()).collect();
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = data.batch(chunk, &dev);
        let logits = net.forward(x);
        correct += count_correct(logits.clone(), y.clone());
        loss += loss_fn.forward(logits, y).into_scalar::<f32>() as f64 * chunk.len() as f64;
    }
    let n = data.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// Logits `[n, 10]` (row-major) of `net` on every image of `data`, in evaluation mode.
pub fn logits(net: &Net, data: &LabeledImages, batch_size: usize, device: &Device) -> Vec<f32> {
    let net = net.valid();
    let dev = device.clone().without_autodiff();
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut out = Vec::with_capacity(data.len() * 10);
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = data.batch(chunk, &dev);
        out.extend(crate::mpo_linear::to_vec(net.forward(x)));
    }
    out
}

/// Trains from `first_epoch` (1-based; > 1 when resuming) to `cfg.epochs`.
///
/// `device` must have autodiff enabled. The returned records hold the epochs run here.
///
/// # Errors
/// Invalid config or data, a non-finite loss ([`NnError::NonFiniteLoss`]: the model of the last
/// finished epoch is what the observer last saw), or an observer error.
#[allow(clippy::too_many_arguments)]
pub fn train(
    mut net: Net,
    mut optim: ModuleOptimizer,
    cfg: &TrainConfig,
    train: &LabeledImages,
    test: Option<&LabeledImages>,
    first_epoch: usize,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<(Net, Vec<EpochRecord>)> {
    cfg.validate()?;
    if train.is_empty() {
        return Err(NnError::EmptySet {
            split: "training",
            why: String::new(),
        });
    }
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let shards = crate::shards::shard_count(&net, cfg.batch_size, cfg.shard_rows);
    let workers = crate::shards::ShardWorkers::new(rayon::current_num_threads().min(shards))?;
    let mut records = Vec::new();
    for epoch in first_epoch.max(1)..=cfg.epochs {
        let lr = cfg.schedule.at(cfg.lr, epoch - 1);
        let epoch_seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
        let order = shuffled_indices(train.len(), epoch_seed);
        let augmented;
        let source = if cfg.augment {
            let mut rng = StdRng::seed_from_u64(epoch_seed ^ 0x5eed);
            augmented = LabeledImages {
                images: if train.images.channels == 3 {
                    train.images.random_crop_flip(4, &mut rng)
                } else {
                    train.images.random_shift(2, &mut rng)
                },
                labels: train.labels.clone(),
            };
            &augmented
        } else {
            train
        };
        let start = Instant::now();
        let steps = order.len().div_ceil(cfg.batch_size);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for (s, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let b = crate::shards::batch_gradients(
                &net,
                source,
                chunk,
                cfg.shard_rows,
                &loss_fn,
                device,
                &workers,
            );
            let value = (b.loss_sum / chunk.len() as f64) as f32;
            if !value.is_finite() {
                return Err(NnError::NonFiniteLoss {
                    loss: value,
                    epoch,
                    step: s + 1,
                });
            }
            correct += b.correct;
            loss_sum += b.loss_sum;
            net = optim.step(lr, net, b.grads);
            observer.on_step(epoch, s + 1, steps, value);
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let (test_loss, test_acc) = match test {
            Some(t) => {
                let (l, a) = evaluate(&net, t, 1000, device);
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        let record = EpochRecord {
            epoch,
            lr,
            train_loss: loss_sum / train.len() as f64,
            train_acc: correct as f64 / train.len() as f64,
            test_loss,
            test_acc,
            train_seconds,
            validation_loss: None,
            validation_acc: None,
        };
        observer.on_epoch(&record, &net, &optim)?;
        records.push(record);
    }
    Ok((net, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tnml_data::Images;

    #[test]
    fn the_validation_split_is_disjoint_and_covers_every_image() {
        // each image's pixel holds its own index, so the split can be traced
        let n = 50;
        let data = LabeledImages {
            images: Images {
                data: (0..n).map(|i| i as f32).collect(),
                len: n,
                channels: 1,
                height: 1,
                width: 1,
            },
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        };
        let (train, valid) = data.split_validation(12, 7).unwrap();
        assert_eq!((train.len(), valid.len()), (38, 12));
        let mut seen: Vec<usize> = train
            .images
            .data
            .iter()
            .chain(&valid.images.data)
            .map(|&x| x as usize)
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
        // labels travel with their images
        for (x, l) in valid.images.data.iter().zip(&valid.labels) {
            assert_eq!((*x as usize % 10) as u8, *l);
        }
        assert_eq!(data.split_validation(12, 7).unwrap().1.labels, valid.labels);
        assert!(data.split_validation(0, 7).is_err());
        assert!(data.split_validation(50, 7).is_err());
    }
}
