//! # tnml-mps
//!
//! The matrix product state classifier of Stoudenmire & Schwab (2016), "Supervised Learning
//! with Tensor Networks": local feature maps ([`FeatureMap`]), the model ([`MpsClassifier`]),
//! the DMRG-like sweep trainer with the label index moving ([`train_sweeps`]), the gradient
//! trainer ([`train_gradient`]), and the projection of the model onto its learned reduced
//! feature space ([`projection`]), where the core can be refitted by ridge least squares or as
//! softmax logits ([`softmax`]). [`Decision`] says how scores become a class.
//!
//! Pixels are row-major, values in `[0, 1]`. The hot loops are batched GEMMs over samples
//! (faer, f32), parallel over sample blocks with rayon; decompositions go through `tnml-core`.

pub mod collective;
pub mod device;
mod env;
pub mod error;
mod exp;
pub mod feature;
pub mod gemm;
pub mod gradient;
pub mod io;
mod local;
pub mod model;
pub mod observe;
pub mod options;
pub mod projection;
pub mod softmax;
pub mod sweep;

pub use collective::{Collective, SingleProcess};
pub use device::Device;
pub use error::{MpsError, Result};
pub use feature::{embed_batch, FeatureMap, Move, SiteFeatures};
pub use gradient::{
    loss_and_gradients, train_gradient, train_gradient_sharded, EpochOrders, GradientConfig, LrSchedule,
};
pub use model::label::Direction;
pub use model::{Decision, Loss, MpsClassifier, Scores};
pub use observe::{BondStep, EpochObserver, EpochSummary, Silent, SweepObserver, SweepSummary};
pub use options::Trainer;
pub use projection::{Projection, ReducedFeatures, RefitKind, RefitOutcome};
pub use softmax::SoftmaxFit;
pub use sweep::{train_sweeps, train_sweeps_sharded, FinalRefit, SweepConfig, SweepSettings};
