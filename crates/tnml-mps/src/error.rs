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
    /// Two counts that must agree do not (samples and labels, pixels and sites, ...).
    #[error("{got} {what} for {expected} {of}")]
    CountMismatch {
        /// What was counted ("labels", "sites", ...).
        what: &'static str,
        /// How many there are.
        got: usize,
        /// How many there must be.
        expected: usize,
        /// What they must match ("samples", "pixels of a 14x14 image", ...).
        of: String,
    },
    /// Pixel values that do not split into whole samples.
    #[error("{pixels} pixel values do not split into samples of {sites} pixels")]
    RaggedPixels {
        /// Number of pixel values.
        pixels: usize,
        /// Pixels (sites) per sample.
        sites: usize,
    },
    /// Features of another shape than the model's sites.
    #[error("the model has {model_sites} sites of dimension {model_dim}, the data {data_sites} sites of dimension {data_dim} (image size {height}x{width})")]
    FeatureShape {
        /// Sites of the model.
        model_sites: usize,
        /// Feature dimension of the model.
        model_dim: usize,
        /// Sites of the data.
        data_sites: usize,
        /// Feature dimension of the data.
        data_dim: usize,
        /// The model's image height.
        height: usize,
        /// The model's image width.
        width: usize,
    },
    /// A site tensor whose physical dimension does not fit its role.
    #[error("site {site} has physical dimension {got}, expected {expected}")]
    PhysDim {
        /// The site.
        site: usize,
        /// Its physical dimension.
        got: usize,
        /// What the feature map (times the labels at the label site) needs.
        expected: usize,
    },
    /// A site or bond index outside the chain.
    #[error("{what} {index} is outside {first}..{len}")]
    OutOfRange {
        /// "site", "turn site", "bond", ...
        what: &'static str,
        /// The index given.
        index: usize,
        /// Smallest valid index.
        first: usize,
        /// One past the largest valid index.
        len: usize,
    },
    /// A chain too short for the operation.
    #[error("{operation} needs at least {needed} sites, the model has {sites}")]
    TooFewSites {
        /// What was attempted.
        operation: &'static str,
        /// Sites needed.
        needed: usize,
        /// Sites the model has.
        sites: usize,
    },
    /// A bond dimension of 0 (in a schedule, a start, a projection).
    #[error("bond dimension 0{context}: it must be at least 1")]
    ZeroBondDim {
        /// Where (", entry 2 of the schedule"), or empty.
        context: String,
    },
    /// An option outside its valid range.
    #[error("{option} is {value}: {requirement}")]
    InvalidOption {
        /// The option ("lambda", "sweeps", ...).
        option: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        requirement: &'static str,
    },
    /// A site option (the turn site) outside the chain.
    #[error("{option} is {site}: the chain has sites 0..{sites}")]
    SiteOutOfChain {
        /// The option ("turn_site").
        option: &'static str,
        /// The site given.
        site: usize,
        /// The number of sites.
        sites: usize,
    },
    /// Gradient training diverged: a non-finite loss, or weights that left any sane range.
    #[error("training diverged at epoch {epoch}, batch {batch}: {what}; the model was left at its state before that step")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// What went wrong, with the value.
        what: String,
    },
    /// A class with no training sample.
    #[error("label {label} has no training samples")]
    EmptyClass {
        /// The label.
        label: usize,
    },
    /// The normal equations of a ridge refit are singular.
    #[error("the {size}x{size} normal equations are singular; refit with lambda > 0")]
    SingularRefit {
        /// Their size.
        size: usize,
    },
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
    /// A compute device that cannot be used: not built in, no driver, no such device, or a
    /// failure inside the device's runtime.
    #[error("device {device}: {reason}")]
    Device {
        /// The device as asked for (`cuda:0`).
        device: String,
        /// What is wrong, with the numbers.
        reason: String,
    },
    /// A choice given by a name that is not one of its names (a loss, a trainer...).
    #[error("{what} {given:?}: use {expected}")]
    UnknownChoice {
        /// The setting (`loss`, `trainer`, `lr_schedule`, `feature_map`).
        what: &'static str,
        /// The name given.
        given: String,
        /// The names accepted.
        expected: &'static str,
    },
    /// A tensor-network core error.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// File I/O.
    #[error("{file}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias of the MPS classifier.
pub type Result<T> = std::result::Result<T, MpsError>;

impl MpsError {
    /// [`MpsError::InvalidOption`] with the value formatted.
    pub(crate) fn invalid(
        option: &'static str,
        value: impl std::fmt::Display,
        requirement: &'static str,
    ) -> Self {
        Self::InvalidOption {
            option,
            value: value.to_string(),
            requirement,
        }
    }

    /// Checks a penalty: finite and nonnegative.
    pub(crate) fn check_lambda(lambda: f64) -> Result<()> {
        if lambda >= 0.0 && lambda.is_finite() {
            Ok(())
        } else {
            Err(Self::invalid("lambda", lambda, "it must be finite and >= 0"))
        }
    }
}
