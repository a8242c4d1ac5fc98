//! The sweep trainer of Stoudenmire & Schwab (2016): DMRG-like two-site updates with the label
//! index moving with the sweep.
//!
//! One *sweep* is a left-to-right pass over bonds (0,1) .. (N-2,N-1) followed by a right-to-left
//! pass back. At bond (j, j+1):
//! 1. merge `B = A_j A_{j+1}` (the label sits on one of them);
//! 2. minimize the cost over `B` with the projected inputs (see [`crate::local`]): the paper's
//!    quadratic cost against one-hot targets (CGLS), or softmax cross-entropy (nonlinear CG with
//!    exact line searches on the logits);
//! 3. split `B` by a truncated SVD (`TruncParams`: max bond from the schedule, cutoff): going
//!    right, `A_j = U` (left-orthogonal) and `A_{j+1} = S V^T` takes the label; going left,
//!    `A_j = U S` takes the label and `A_{j+1} = V^T` (right-orthogonal);
//! 4. advance the cached environment of every sample by one site and normalize it.
//!
//! The model thus stays in mixed canonical form around the label, so each truncation is optimal
//! for the whole model. Environments are cached in `f32`, one slot per bond: slot `k` holds, for
//! every sample, the contraction of sites `< k` (left of the current bond) or `>= k` (right of
//! it), `N_T * D` floats per slot. Each normalized per sample, so long chains neither underflow
//! nor overflow, and the cost is that of the normalized projections (as in the original code).

use std::time::Instant;

use crate::collective::{agree, sync_model, Collective, SingleProcess};
use crate::error::{MpsError, Result};
use crate::feature::SiteFeatures;
use crate::model::label::Direction;
use crate::model::{check_training_data, MpsClassifier};
use crate::observe::{BondStep, SweepObserver, SweepSummary};

mod cache;
mod config;

use cache::EnvCache;
pub use config::{
    check_turn_site, FinalRefit, SweepConfig, SweepSettings, DEFAULT_CUTOFF, DEFAULT_MAX_BOND,
    MAX_SOLVER_PASSES,
};

/// Trains `model` on `feats` / `labels` by sweeps. The label is first moved (exactly) to the
/// turn site and the model put in canonical form around it ([`MpsClassifier::move_label_to`]). The model's decision rule is set
/// to fit the loss ([`Loss::decision`]).
///
/// An observer may stop the training after any bond update or sweep; the summaries of the
/// sweeps completed so far are returned.
///
/// On a non-finite cost the update is not applied and [`MpsError::NonFiniteCost`] is returned:
/// the model is left at its last good state.
///
/// # Errors
/// Invalid config, features or labels that do not fit the model, a non-finite cost.
pub fn train_sweeps(
    model: &mut MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    config: &SweepConfig,
    observer: &mut dyn SweepObserver,
) -> Result<Vec<SweepSummary>> {
    train_sweeps_sharded(model, feats, labels, config, observer, &SingleProcess)
}

/// [`train_sweeps`] with the training set sharded over the ranks of `comm`: `feats` / `labels`
/// are this rank's samples, environments are built and kept for them only, and every sum over
/// samples is summed over the ranks ([`crate::collective`]). Every rank must call it with the
/// same model, config and an observer that decides alike; the observer's `Break` on any rank
/// stops all. The costs, errors and models are those of one process on the union of the shards
/// (up to the order of f32 additions); with [`SingleProcess`] this is `train_sweeps`.
///
/// # Errors
/// As [`train_sweeps`].
pub fn train_sweeps_sharded(
    model: &mut MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    config: &SweepConfig,
    observer: &mut dyn SweepObserver,
    comm: &dyn Collective,
) -> Result<Vec<SweepSummary>> {
    config.validate()?;
    check_training_data(model, feats, labels)?;
    if model.num_sites() < 2 {
        return Err(MpsError::TooFewSites {
            operation: "a sweep",
            needed: 2,
            sites: model.num_sites(),
        });
    }
    let start = config.turn_site.unwrap_or(0);
    if start >= model.num_sites() {
        return Err(MpsError::OutOfRange {
            what: "turn site",
            index: start,
            first: 0,
            len: model.num_sites(),
        });
    }
    model.move_label_to(start)?;
    sync_model(comm, model)?;
    model.set_decision(config.loss.decision());
    let mut cache = EnvCache::new(model, feats, labels, comm);
    let mut summaries = Vec::with_capacity(config.sweeps);
    let n_bonds = model.num_sites() - 1;
    for sweep in 1..=config.sweeps {
        let t0 = Instant::now();
        let params = config.trunc_at(sweep);
        let mut flops = 0.0;
        let mut truncations = Vec::new();
        let mut last = (0.0, 0.0);
        let c = model.label_site;
        let order: Vec<(Direction, usize)> = (c..n_bonds)
            .map(|j| (Direction::LeftToRight, j))
            .chain((0..n_bonds).rev().map(|j| (Direction::RightToLeft, j)))
            .chain((0..c).map(|j| (Direction::LeftToRight, j)))
            .collect();
        for (i, &(dir, j)) in order.iter().enumerate() {
            let out = cache.update_bond(model, j, dir, config, &params, sweep)?;
            flops += out.flops;
            last = (out.cost, out.train_error);
            let flow = observer.on_bond(&BondStep {
                sweep,
                direction: dir,
                bond: j + 1,
                step: i + 1,
                steps_per_sweep: order.len(),
                cost: out.cost,
                train_error: out.train_error,
                truncation: out.truncation,
            });
            truncations.push(out.truncation);
            if agree(comm, flow).is_break() {
                return Ok(summaries);
            }
        }
        let summary = SweepSummary {
            sweep,
            trunc: params,
            cost: last.0,
            train_error: last.1,
            bond_dims: model.bond_dims(),
            truncations,
            seconds: t0.elapsed().as_secs_f64(),
            flops,
        };
        let flow = agree(comm, observer.on_sweep(&summary, model));
        summaries.push(summary);
        if flow.is_break() {
            break;
        }
    }
    Ok(summaries)
}
