//! Typed errors of tnml-nn; every message names the numbers involved.

use thiserror::Error;

/// Errors from building, loading or training MPO-Nets.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NnError {
    /// An option that cannot be used as given.
    #[error("{option}: {reason}")]
    Option {
        /// The option, as the command line spells it.
        option: &'static str,
        /// Why not, with the numbers.
        reason: String,
    },
    /// A data set with no image where at least one is needed.
    #[error("the {split} set is empty{why}")]
    EmptySet {
        /// "training" or "test".
        split: &'static str,
        /// Why (", --test-limit is 0"), or empty.
        why: String,
    },
    /// A layer shape that does not fit (modes vs layer size, bond dims, presets).
    #[error("{0}")]
    Shape(String),
    /// A malformed MPO spec string.
    #[error("cannot parse MPO spec {spec:?}: {why}")]
    Spec {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// A checkpoint written for another model, or a corrupt one.
    #[error("{0}")]
    Checkpoint(String),
    /// Input data that does not fit the model.
    #[error("{0}")]
    Data(String),
    /// The loss became NaN or infinite.
    #[error(
        "loss is {loss} at epoch {epoch}, step {step}: training stopped, the last good checkpoint is kept"
    )]
    NonFiniteLoss {
        /// The bad loss value.
        loss: f32,
        /// 1-based epoch.
        epoch: usize,
        /// Step within the epoch (1-based).
        step: usize,
    },
    /// A data file that is missing or corrupt, or a transform that does not fit the images.
    #[error(transparent)]
    Dataset(#[from] tnml_data::DataError),
    /// An error from the tensor-network core.
    #[error(transparent)]
    Core(#[from] tnml_core::CoreError),
    /// File system errors.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, NnError>;
