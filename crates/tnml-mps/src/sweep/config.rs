//! [`SweepConfig`]: what the sweep trainer does, validated once.

use tnml_core::TruncParams;

use crate::error::{MpsError, Result};
use crate::model::Loss;

/// The most iterations of the local solver per bond (or refit) a configuration may ask for.
pub const MAX_SOLVER_PASSES: usize = 1000;

/// Settings of the sweep trainer.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepConfig {
    /// Number of full sweeps (left-to-right and back).
    pub sweeps: usize,
    /// Truncation of every SVD split, per sweep; the last entry repeats (ITensor's sweep
    /// schedule). Build it with [`SweepConfig::bond_schedule`] from bond caps and one cutoff.
    pub schedule: Vec<TruncParams>,
    /// Iterations per bond of the local solver: CGLS for the quadratic cost, nonlinear CG with
    /// exact line searches for cross-entropy.
    pub cg_passes: usize,
    /// L2 penalty `lambda/2 ||B||^2` on the bond tensor.
    pub lambda: f64,
    /// Iterations of the one-site refit of the label-carrying tensor after each truncated
    /// split (0 = off), with the same solver as the bond. The refit uses the new, normalized
    /// environment, so it repairs both the truncation loss and the change of per-sample scale
    /// before the next bond.
    pub refit_passes: usize,
    /// The local cost: the paper's quadratic cost against one-hot targets ([`Loss::Squared`],
    /// the model then predicts `argmax |f|`) or softmax cross-entropy ([`Loss::CrossEntropy`],
    /// solved by nonlinear CG with exact line searches; the model predicts `argmax f`).
    pub loss: Loss,
    /// Site where every sweep starts and ends (the label is moved there first):
    /// right to the end, back to the left end, and right again to this site. `None` starts at
    /// site 0 (the paper's plain left-right sweep). Ending in the middle keeps the model whose
    /// label sits where both wings carry information.
    pub turn_site: Option<usize>,
}

/// The sweep trainer's default bond cap (the paper's smallest table row).
pub const DEFAULT_MAX_BOND: usize = 10;
/// The sweep trainer's default cutoff (relative discarded weight per SVD).
pub const DEFAULT_CUTOFF: f64 = 1e-10;

/// The defaults of `tnml mps train` and `MPSClassifier()` alike, the paper's settings: bond 10,
/// 3 sweeps, the quadratic cost, no penalty, cutoff 1e-10, 3 CG passes per bond and 1 refit
/// pass. The CLI's flags and Python's parameters take their defaults from here.
impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            sweeps: 3,
            schedule: Self::bond_schedule(&[DEFAULT_MAX_BOND], DEFAULT_CUTOFF),
            cg_passes: 3,
            lambda: 0.0,
            refit_passes: 1,
            loss: Loss::Squared,
            turn_site: None,
        }
    }
}

impl SweepConfig {
    /// A schedule of truncations from bond caps per sweep and one cutoff.
    pub fn bond_schedule(max_bonds: &[usize], cutoff: f64) -> Vec<TruncParams> {
        max_bonds
            .iter()
            .map(|&b| TruncParams::max_bond(b).with_cutoff(cutoff))
            .collect()
    }

    /// The truncation of sweep `sweep` (1-based); the schedule's last entry repeats.
    ///
    /// # Panics
    /// On an empty schedule ([`SweepConfig::validate`] refuses one).
    pub fn trunc_at(&self, sweep: usize) -> TruncParams {
        let i = sweep.saturating_sub(1).min(self.schedule.len().saturating_sub(1));
        self.schedule[i]
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// No sweeps, an empty schedule, a bond dimension of 0, a bad cutoff or lambda.
    pub fn validate(&self) -> Result<()> {
        if self.sweeps == 0 {
            return Err(MpsError::invalid("sweeps", 0, "at least one sweep is needed"));
        }
        // a solver that runs for hours per bond is not meant: CG on the bond tensor settles in a
        // handful of iterations (the paper and the defaults use 1 to 5)
        if self.cg_passes > MAX_SOLVER_PASSES {
            return Err(MpsError::invalid(
                "cg_passes",
                self.cg_passes,
                "at most 1000 solver iterations per bond",
            ));
        }
        if self.refit_passes > MAX_SOLVER_PASSES {
            return Err(MpsError::invalid(
                "refit_passes",
                self.refit_passes,
                "at most 1000 solver iterations per refit",
            ));
        }
        if self.schedule.is_empty() {
            return Err(MpsError::invalid(
                "the bond schedule",
                "empty",
                "it needs at least one entry",
            ));
        }
        for (i, t) in self.schedule.iter().enumerate() {
            if t.max_bond == 0 {
                return Err(MpsError::ZeroBondDim {
                    context: format!(" in the schedule (entry {i})"),
                });
            }
            t.validate()?;
        }
        MpsError::check_lambda(self.lambda)
    }
}
