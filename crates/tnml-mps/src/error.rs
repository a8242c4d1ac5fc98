//! Typed errors of the MPS classifier.

use thiserror::Error;
use tnml_core::CoreError;

/// Errors returned by `tnml-mps`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MpsError {
    /// A pixel value is outside `[0, 1]` or not finite.
    #[error("pixel {pixel} of sample {sample} is {value}: pixel values must lie in [0, 1]")]
    PixelOutOfRange {
        /// Sample index.
        sample: usize,
        /// Pixel index within the sample.
        pixel: usize,
        /// The value.
        value: f32,
    },
    /// A label is outside `0..num_labels`.
    #[error("label {label} of sample {sample} is outside 0..{num_labels}")]
    LabelOutOfRange {
        /// Sample index.
        sample: usize,
        /// The label.
        label: usize,
        /// Number of labels of the model.
        num_labels: usize,
    },
    /// Input sizes do not fit the model or each other.
    #[error("{0}")]
    Shape(String),
    /// A configuration value is invalid (bond dimension 0, no sweeps, ...).
    #[error("{0}")]
    Config(String),
    /// The cost became NaN or infinite; the model keeps its last good state.
    #[error("the cost became {value} at bond {bond} in sweep {sweep} ({direction}); the model was left at its last good state")]
    NonFiniteCost {
        /// Sweep number (1-based).
        sweep: usize,
        /// Bond (number of sites to its left).
        bond: usize,
        /// "left-to-right" or "right-to-left".
        direction: &'static str,
        /// The value.
        value: f64,
    },
    /// A model file is malformed or belongs to another kind of model.
    #[error("{file}: {reason}")]
    ModelFile {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor-network core error.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// File I/O.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias of the MPS classifier.
pub type Result<T> = std::result::Result<T, MpsError>;
