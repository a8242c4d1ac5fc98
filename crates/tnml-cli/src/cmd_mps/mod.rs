//! `tnml mps train | eval | project`: the MPS classifier of Stoudenmire & Schwab (2016).
//!
//! `options` holds what the subcommands share (feature map, loss, data, loading); `train` the
//! sweep trainer's command, `gradient` the gradient trainer's, `save` the run-directory writes
//! both trainers make; `eval` and `project` their commands.

use anyhow::Result;
use clap::Subcommand;

use crate::cluster::Cluster;

mod eval;
mod gradient;
mod options;
mod predict;
mod project;
mod resume;
mod save;
mod shard;
mod sweep_observer;
mod train;
mod train_args;

pub use eval::EvalArgs;
pub use predict::PredictArgs;
pub use project::ProjectArgs;
pub use train_args::TrainArgs;

/// `tnml mps` subcommands.
#[derive(Debug, Subcommand)]
pub enum MpsCommand {
    /// Train by DMRG-like two-site sweeps (label index moving with the sweep).
    Train(TrainArgs),
    /// Error rate and per-class accuracy of a saved model.
    Eval(EvalArgs),
    /// Per image: label, predicted label and scores f^l of a saved model (CSV or safetensors).
    Predict(PredictArgs),
    /// Mixed canonical form around a bond: reduced features and core; optionally refit the core.
    Project(ProjectArgs),
}

/// Runs a `tnml mps` subcommand; `train` runs on every rank of `cluster` (data parallel), the
/// others in one process.
pub fn run(cmd: &MpsCommand, cluster: &Cluster) -> Result<()> {
    match cmd {
        MpsCommand::Train(a) => {
            a.check_trainer_options()?;
            match a.trainer {
                tnml_mps::Trainer::Gradient => gradient::train(a, cluster),
                tnml_mps::Trainer::Sweep => train::train(a, cluster),
            }
        }
        MpsCommand::Eval(a) => cluster.require_single("mps eval").and_then(|()| eval::eval(a)),
        MpsCommand::Predict(a) => cluster
            .require_single("mps predict")
            .and_then(|()| predict::predict(a)),
        MpsCommand::Project(a) => cluster
            .require_single("mps project")
            .and_then(|()| project::project(a)),
    }
}
