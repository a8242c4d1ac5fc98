//! [`SweepConfig`]: what the sweep trainer does, validated once.

use tnml_core::TruncParams;

use crate::error::{MpsError, Result};
use crate::model::Loss;
use crate::projection::RefitKind;

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

/// The sweep trainer's options as a front end takes them (the CLI's flags, Python's
/// parameters): turned into a checked [`SweepConfig`] and final refit here, once. The defaults
/// are [`SweepConfig::default`]'s.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSettings {
    /// Number of sweeps.
    pub sweeps: usize,
    /// Bond cap per sweep; the last repeats.
    pub max_bonds: Vec<usize>,
    /// Relative discarded weight allowed per SVD.
    pub cutoff: f64,
    /// Solver iterations per bond.
    pub cg_passes: usize,
    /// L2 penalty on the bond tensor.
    pub lambda: f64,
    /// Solver iterations of the one-site refit after each split.
    pub refit_passes: usize,
    /// The local cost (`None`: the default, quadratic).
    pub loss: Option<Loss>,
    /// After the sweeps, refit the core at the label's bond on the reduced features.
    pub final_refit: Option<RefitKind>,
    /// The penalty of the final refit (`None`: chosen on a validation split).
    pub final_refit_lambda: Option<f64>,
}

impl Default for SweepSettings {
    fn default() -> Self {
        let d = SweepConfig::default();
        Self {
            sweeps: d.sweeps,
            max_bonds: vec![DEFAULT_MAX_BOND],
            cutoff: DEFAULT_CUTOFF,
            cg_passes: d.cg_passes,
            lambda: d.lambda,
            refit_passes: d.refit_passes,
            loss: None,
            final_refit: None,
            final_refit_lambda: None,
        }
    }
}

/// The refit of the core after the sweeps ([`SweepSettings::final_refit`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinalRefit {
    /// Ridge or softmax.
    pub kind: RefitKind,
    /// The penalty (`None`: chosen on a validation split).
    pub lambda: Option<f64>,
}

impl SweepSettings {
    /// The checked configuration (no turn site yet: [`SweepConfig::turning_at`] once the
    /// number of sites is known) and the checked final refit.
    ///
    /// # Errors
    /// No bond cap, anything [`SweepConfig::validate`] refuses, a final-refit penalty without a
    /// final refit, or one that is negative or not finite.
    pub fn config(&self) -> Result<(SweepConfig, Option<FinalRefit>)> {
        if self.max_bonds.is_empty() {
            return Err(MpsError::invalid(
                "max_bond",
                "empty",
                "give a bond dimension (or one per sweep)",
            ));
        }
        let config = SweepConfig {
            sweeps: self.sweeps,
            schedule: SweepConfig::bond_schedule(&self.max_bonds, self.cutoff),
            cg_passes: self.cg_passes,
            lambda: self.lambda,
            refit_passes: self.refit_passes,
            loss: self.loss.unwrap_or(SweepConfig::default().loss),
            turn_site: None,
        };
        config.validate()?;
        if let Some(l) = self.final_refit_lambda {
            if self.final_refit.is_none() {
                return Err(MpsError::invalid(
                    "final_refit_lambda",
                    l,
                    "it is the penalty of the final refit, which is not asked for",
                ));
            }
            if !(l >= 0.0 && l.is_finite()) {
                return Err(MpsError::invalid(
                    "final_refit_lambda",
                    l,
                    "the penalty must be finite and >= 0",
                ));
            }
        }
        let refit = self.final_refit.map(|kind| FinalRefit {
            kind,
            lambda: self.final_refit_lambda,
        });
        Ok((config, refit))
    }
}

/// Checks that the turn site (where the label sits; both trainers take one) is on the chain.
///
/// # Errors
/// [`MpsError::SiteOutOfChain`].
pub fn check_turn_site(site: usize, sites: usize) -> Result<()> {
    if site >= sites {
        return Err(MpsError::SiteOutOfChain {
            option: "turn_site",
            site,
            sites,
        });
    }
    Ok(())
}

impl SweepConfig {
    /// The configuration with its sweeps starting and ending at `site` of a chain of `sites`.
    ///
    /// # Errors
    /// A site outside the chain.
    pub fn turning_at(self, site: usize, sites: usize) -> Result<Self> {
        check_turn_site(site, sites)?;
        Ok(Self {
            turn_site: Some(site),
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_build_the_default_config() {
        let (config, refit) = SweepSettings::default().config().unwrap();
        assert_eq!(config, SweepConfig::default());
        assert_eq!(refit, None);
        let turned = config.turning_at(98, 196).unwrap();
        assert_eq!(turned.turn_site, Some(98));
    }

    #[test]
    fn settings_refuse_what_would_be_ignored_or_wrong() {
        let e = |s: SweepSettings| s.config().unwrap_err().to_string();
        let no_bond = SweepSettings {
            max_bonds: vec![],
            ..SweepSettings::default()
        };
        assert!(e(no_bond).starts_with("max_bond is empty"));
        let orphan = SweepSettings {
            final_refit_lambda: Some(0.1),
            ..SweepSettings::default()
        };
        assert!(e(orphan).starts_with("final_refit_lambda is 0.1: it is the penalty"));
        let negative = SweepSettings {
            final_refit: Some(RefitKind::Softmax),
            final_refit_lambda: Some(-1.0),
            ..SweepSettings::default()
        };
        assert!(e(negative).contains("finite and >= 0"));
        let zero = SweepSettings {
            max_bonds: vec![10, 0],
            ..SweepSettings::default()
        };
        let text = e(zero);
        assert!(text.contains("entry 1"), "{text}");
        let (_, refit) = SweepSettings {
            final_refit: Some(RefitKind::Ridge),
            ..SweepSettings::default()
        }
        .config()
        .unwrap();
        assert_eq!(
            refit,
            Some(FinalRefit {
                kind: RefitKind::Ridge,
                lambda: None
            })
        );
        let far = SweepConfig::default().turning_at(196, 196).unwrap_err();
        assert_eq!(far.to_string(), "turn_site is 196: the chain has sites 0..196");
    }
}
