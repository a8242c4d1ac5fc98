//! Progress of the trainers, kept out of their loops: the sweep trainer reports every bond
//! update ([`BondStep`]) and every sweep ([`SweepSummary`]) to a [`SweepObserver`], the gradient
//! trainer every batch and epoch ([`EpochSummary`]) to an [`EpochObserver`]. [`Silent`] ignores
//! both.

use std::ops::ControlFlow;

use tnml_core::{TruncParams, Truncation};

use crate::model::label::Direction;
use crate::model::MpsClassifier;

/// What one bond update did.
#[derive(Debug, Clone, PartialEq)]
pub struct BondStep {
    /// Sweep (1-based).
    pub sweep: usize,
    /// Direction.
    pub direction: Direction,
    /// The bond (j + 1 for sites j, j+1).
    pub bond: usize,
    /// Updates done in this sweep so far (1-based).
    pub step: usize,
    /// Updates per sweep.
    pub steps_per_sweep: usize,
    /// Mean local cost per sample after the update: `1/(2 N_T) sum (f - y)^2` for the quadratic
    /// loss, the mean cross-entropy for [`crate::Loss::CrossEntropy`].
    pub cost: f64,
    /// Training error of the model right after this update.
    pub train_error: f64,
    /// What the split's SVD kept and dropped (`kept` is the new bond dimension).
    pub truncation: Truncation,
}

/// What one sweep did.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSummary {
    /// Sweep (1-based).
    pub sweep: usize,
    /// The truncation used in this sweep (from the schedule).
    pub trunc: TruncParams,
    /// Cost after the last update (as in [`BondStep::cost`]).
    pub cost: f64,
    /// Training error after the last update.
    pub train_error: f64,
    /// Bond dimensions at the end of the sweep.
    pub bond_dims: Vec<usize>,
    /// Every split of the sweep, in order.
    pub truncations: Vec<Truncation>,
    /// Wall time of the sweep.
    pub seconds: f64,
    /// Floating-point operations of the local solves and environment updates.
    pub flops: f64,
}

impl SweepSummary {
    /// Sum over the sweep's splits of the relative discarded weight. Each split sees the bond
    /// tensor of a model in mixed canonical form, so each term is the fraction of the model's
    /// squared norm that split dropped (as DMRG's accumulated truncation error).
    pub fn discarded_weight(&self) -> f64 {
        self.truncations.iter().map(|t| t.discarded_weight).sum()
    }
}

/// Receives progress of the sweep trainer.
pub trait SweepObserver {
    /// After every bond update. [`ControlFlow::Break`] stops the training right here: the
    /// model is whole (every update is complete when this is called), with the label on one
    /// of the two sites just updated, and no further summary is reported (a Ctrl-C, say).
    fn on_bond(&mut self, _step: &BondStep) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// After every sweep, with the model as it now is. [`ControlFlow::Break`] stops the
    /// training after this sweep (an observer that could not save the model, say).
    fn on_sweep(&mut self, _summary: &SweepSummary, _model: &MpsClassifier) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// What one epoch of the gradient trainer did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSummary {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean loss over the epoch's batches.
    pub loss: f64,
    /// Training error over the epoch (each batch measured before its update).
    pub train_error: f64,
    /// Wall time.
    pub seconds: f64,
}

/// Receives progress of the gradient trainer.
pub trait EpochObserver {
    /// After every minibatch: `(epoch, batch, batches per epoch, loss)`. [`ControlFlow::Break`]
    /// stops the training after this batch's update (the model is whole); the epoch is not
    /// summarized.
    fn on_batch(&mut self, _epoch: usize, _batch: usize, _batches: usize, _loss: f64) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// After every epoch; [`ControlFlow::Break`] stops the training after it.
    fn on_epoch(&mut self, _summary: &EpochSummary, _model: &MpsClassifier) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl SweepObserver for Silent {}
impl EpochObserver for Silent {}
