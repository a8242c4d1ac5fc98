//! The options of `tnml mps train`: those of both trainers, and one typed group per trainer
//! (`SweepOptions`, `GradientOptions`), so that one trainer's options given with the other are
//! refused, not ignored.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use tnml_mps::{FeatureMap, GradientConfig, Loss, LrSchedule, RefitKind, SweepConfig, Trainer};

use super::options::{as_name, choice, MpsData};
use crate::args::{Limits, Seed, Threads};

/// Arguments of `tnml mps train`.
#[derive(Debug, Args, Serialize)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: MpsData,
    /// Maximum bond dimension per sweep, comma separated; the last value repeats (e.g. 10 or 4,10,20).
    #[arg(
        long = "max-bond",
        value_delimiter = ',',
        default_values_t = [tnml_mps::sweep::DEFAULT_MAX_BOND]
    )]
    pub max_bond: Vec<usize>,
    /// Feature map.
    #[arg(long, default_value_t = FeatureMap::Trig, value_parser = choice::<FeatureMap>(&FeatureMap::NAMES))]
    #[serde(serialize_with = "as_name")]
    pub feature_map: FeatureMap,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: Limits,
    /// Hold out the last N images of the training subset: they are not trained on, and every
    /// sweep (or epoch of --trainer gradient) reports their error (to choose options such as
    /// --lambda, --epochs or --lr without the test set).
    #[arg(long)]
    pub validation: Option<usize>,
    #[command(flatten)]
    #[serde(flatten)]
    pub seed: Seed,
    #[command(flatten)]
    #[serde(flatten)]
    pub threads: Threads,
    /// Site where each sweep starts and ends (default: the middle). 0 gives the paper's plain
    /// left-to-right-and-back sweep; ending in the middle keeps the more expressive model.
    #[arg(long)]
    pub turn_site: Option<usize>,
    /// Trainer: sweep (DMRG-like, adaptive bond) or gradient (Adam on all cores, fixed bond).
    #[arg(long, default_value_t = Trainer::default(), value_parser = choice::<Trainer>(&Trainer::NAMES))]
    pub trainer: Trainer,
    /// Options of the sweep trainer (refused with `--trainer gradient`).
    #[command(flatten)]
    #[serde(flatten)]
    pub sweep: SweepOptions,
    /// Options of the gradient trainer (refused with the sweep trainer).
    #[command(flatten)]
    #[serde(flatten)]
    pub gradient: GradientOptions,
    /// Loss. Sweep trainer: squared (the paper's quadratic cost; predicts argmax |f|, the
    /// default) or cross-entropy (softmax logits, predicts argmax f). Gradient trainer:
    /// cross-entropy by default.
    #[arg(long, value_parser = choice::<Loss>(&Loss::NAMES))]
    pub loss: Option<Loss>,
    /// Run directory (default: runs/mps-train-<UTC time>).
    #[arg(long, conflicts_with = "resume")]
    #[serde(skip)]
    pub out: Option<PathBuf>,
    /// The options given on the command line (clap ids), filled in by `main`: options of one
    /// trainer given with the other are refused, not ignored.
    #[arg(skip)]
    #[serde(skip)]
    pub explicit: Vec<String>,
}

/// Options only the sweep trainer reads: one group, so `--trainer gradient` can refuse them all.
#[derive(Debug, Args, Serialize)]
#[group(id = "sweep_options", multiple = true)]
pub struct SweepOptions {
    /// Relative discarded weight allowed at each SVD (sum of dropped s^2 / sum of s^2).
    #[arg(long, default_value_t = tnml_mps::sweep::DEFAULT_CUTOFF)]
    pub cutoff: f64,
    /// Number of sweeps (each left-to-right and back).
    #[arg(long, default_value_t = SweepConfig::default().sweeps)]
    pub sweeps: usize,
    /// Conjugate-gradient iterations per bond.
    #[arg(long, default_value_t = SweepConfig::default().cg_passes)]
    pub cg_passes: usize,
    /// CG iterations of the one-site refit after each truncated split (0 = off).
    #[arg(long, default_value_t = SweepConfig::default().refit_passes)]
    pub refit_passes: usize,
    /// L2 penalty on the bond tensor.
    #[arg(long, default_value_t = SweepConfig::default().lambda)]
    pub lambda: f64,
    /// Move the label from site 0 to the turn site truncated at the first sweep's cap instead of
    /// exactly: the exact move widens the bonds to about 10x the start's (110), and the first
    /// sweep's work and environments with them. Measured on MNIST (cross-entropy, validation
    /// split of 10,000): at bond 10 over 2 sweeps 15% less wall time, environments at the start
    /// 354 MB instead of about 2 GB, but 0.13 points more validation error (2.56% against
    /// 2.43%); at bond 20 over 1 sweep 31% less sweep time at the same validation error (1.86%).
    /// Not the default, since it did cost accuracy once.
    #[arg(long)]
    #[serde(default)]
    pub truncated_start: bool,
    /// After the sweeps, refit the core at the turn site on the reduced features (as `tnml mps
    /// project --refit`): `softmax` fits it as logits (penalty chosen on a validation split
    /// unless --final-refit-lambda is given) and saves model-refit.safetensors next to the
    /// swept model.
    #[arg(long, value_parser = choice::<RefitKind>(&RefitKind::NAMES))]
    pub final_refit: Option<RefitKind>,
    /// Penalty of --final-refit.
    #[arg(long)]
    pub final_refit_lambda: Option<f64>,
    /// Continue the sweeps of an earlier run directory from its last checkpoint, up to --sweeps
    /// sweeps in all (give the same data options; the number of MPI ranks may differ).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
}

/// Options only the gradient trainer reads: one group, refused with the sweep trainer.
#[derive(Debug, Args, Serialize)]
#[group(id = "gradient_options", multiple = true)]
pub struct GradientOptions {
    /// Gradient trainer: epochs.
    #[arg(long, default_value_t = GradientConfig::default().epochs)]
    pub epochs: usize,
    /// Gradient trainer: minibatch size.
    #[arg(long, default_value_t = GradientConfig::default().batch_size)]
    pub batch_size: usize,
    /// Gradient trainer: Adam learning rate.
    #[arg(long, default_value_t = GradientConfig::default().learning_rate)]
    pub lr: f64,
    /// Gradient trainer: step size over the epochs, constant or a cosine decay to 0 at the end.
    #[arg(long, default_value_t = GradientConfig::default().schedule, value_parser = choice::<LrSchedule>(&LrSchedule::NAMES))]
    pub lr_schedule: LrSchedule,
    /// Gradient trainer: augment by translating every training image by up to N pixels each
    /// way (drawn afresh per epoch, white fill; at the model's resolution, 14x14 by default).
    #[arg(long, default_value_t = GradientConfig::default().shift)]
    pub shift: usize,
    /// Gradient trainer: augment by mirroring every training image left-right with probability
    /// 1/2, drawn afresh per epoch (for clothes or objects, not for digits).
    #[arg(long)]
    #[serde(default)]
    pub flip: bool,
    /// Gradient trainer: where the passes and Adam run, cpu or cuda[:N] (needs tnml built with
    /// `--features cuda` and an NVIDIA driver; refused otherwise, never a silent fallback).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: tnml_mps::Device,
}

/// `--device`: cpu, cuda or cuda:N.
fn parse_device(text: &str) -> std::result::Result<tnml_mps::Device, String> {
    text.parse().map_err(|e: tnml_mps::MpsError| e.to_string())
}

/// The clap ids of the options in the group `T` (its fields).
fn group_ids<T: Args>() -> Vec<String> {
    T::augment_args(clap::Command::new("group"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

impl TrainArgs {
    /// Refuses options of the trainer that is not running (they would be recorded in
    /// config.json and silently not applied).
    ///
    /// # Errors
    /// The first such option, with the trainer it belongs to.
    pub fn check_trainer_options(&self) -> Result<()> {
        let (foreign, owner) = match self.trainer {
            Trainer::Sweep => (group_ids::<GradientOptions>(), "--trainer gradient"),
            Trainer::Gradient => (group_ids::<SweepOptions>(), "the sweep trainer"),
        };
        if let Some(id) = self.explicit.iter().find(|id| foreign.contains(id)) {
            bail!(
                "--{} applies to {owner}, not to --trainer {}",
                id.replace('_', "-"),
                self.trainer
            );
        }
        if self.trainer == Trainer::Gradient && self.max_bond.len() > 1 {
            bail!(
                "--max-bond {:?}: the gradient trainer trains at one fixed bond dimension; give one value",
                self.max_bond
            );
        }
        Ok(())
    }
}
