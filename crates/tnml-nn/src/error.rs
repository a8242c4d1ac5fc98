//! Typed errors of tnml-nn; every message names the numbers involved.

use thiserror::Error;

/// Errors from building, loading or training MPO-Nets.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NnError {
    /// A setting that cannot be used as given. `field` is the library's name for it (a field
    /// of `TrainConfig`, `NetConfig`...); front ends map it to their own spelling (the CLI's
    /// flag, Python's parameter).
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting, as the library names it (`epochs`, `batch_size`, `lr`, `pairing`...).
        field: &'static str,
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
    /// Input and output modes that do not pair up.
    #[error("an MPO needs as many input modes as output modes (at least one): got {} input modes {in_modes:?} and {} output modes {out_modes:?}", in_modes.len(), out_modes.len())]
    ModeCount {
        /// The input modes given.
        in_modes: Vec<usize>,
        /// The output modes given.
        out_modes: Vec<usize>,
    },
    /// A mode of size 0.
    #[error("mode {position} is 0: modes must be positive")]
    ZeroMode {
        /// Its position among the input modes followed by the output modes.
        position: usize,
    },
    /// Modes whose product does not fit in memory's index range.
    #[error("the {what} {modes:?} multiply past {}", usize::MAX)]
    Overflow {
        /// "input modes", "output modes", ...
        what: &'static str,
        /// The modes.
        modes: Vec<usize>,
    },
    /// A bond list of the wrong length.
    #[error("{cores} cores need {} bond dimensions, got {got}", cores - 1)]
    BondCount {
        /// Number of cores.
        cores: usize,
        /// Bond dimensions given.
        got: usize,
    },
    /// A bond dimension of 0.
    #[error("the dimension of bond {bond} is 0: bond dimensions must be at least 1")]
    ZeroBond {
        /// The bond (number of cores to its left).
        bond: usize,
    },
    /// An MPO whose modes do not multiply to the layer's size.
    #[error("MPO {spec}: input modes multiply to {in_product}, output modes to {out_product}, but the layer is {in_features} -> {out_features}")]
    LayerMismatch {
        /// The spec in Gao's notation.
        spec: String,
        /// Product of the input modes.
        in_product: usize,
        /// Product of the output modes.
        out_product: usize,
        /// The layer's inputs.
        in_features: usize,
        /// The layer's outputs.
        out_features: usize,
    },
    /// An error in one named layer.
    #[error("layer {layer}: {source}")]
    InLayer {
        /// The layer.
        layer: String,
        /// What is wrong there.
        source: Box<NnError>,
    },
    /// A list of MPO specs of the wrong length for the architecture.
    #[error("{arch} has {layers} replaceable layers ({names}), got {got} MPO specs")]
    SpecCount {
        /// The architecture.
        arch: String,
        /// Its replaceable layers.
        layers: usize,
        /// Their names.
        names: String,
        /// Specs given.
        got: usize,
    },
    /// A layer that is not what the operation needs.
    #[error("layer {layer} is {found}, expected {expected}")]
    LayerKind {
        /// The layer.
        layer: String,
        /// What it is.
        found: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A bias of the wrong length.
    #[error("bias has {got} entries, the layer has {outputs} outputs")]
    BiasLength {
        /// Entries given.
        got: usize,
        /// Outputs of the layer.
        outputs: usize,
    },
    /// A malformed MPO spec string.
    #[error("cannot parse MPO spec {spec:?}: {why}")]
    Spec {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// A checkpoint written for another model, or a corrupt one.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong, with the numbers.
        reason: String,
    },
    /// A weights file (safetensors) that cannot be read as asked.
    #[error("{path}: {reason}")]
    WeightsFile {
        /// The file.
        path: String,
        /// What is wrong, with the numbers.
        reason: String,
    },
    /// Images of another shape than the model takes.
    #[error("the model takes {}x{}x{} images (channels x height x width), the data has {}x{}x{}", expected[0], expected[1], expected[2], got[0], got[1], got[2])]
    ImageShape {
        /// `[C, H, W]` of the model.
        expected: [usize; 3],
        /// `[C, H, W]` of the data.
        got: [usize; 3],
    },
    /// Images and labels that do not pair up.
    #[error("{images} images but {labels} labels")]
    LabelCount {
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A label the model has no class for.
    #[error("label {label} out of range for {classes} classes")]
    LabelOutOfRange {
        /// The label.
        label: usize,
        /// Classes of the model.
        classes: usize,
    },
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
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, NnError>;
