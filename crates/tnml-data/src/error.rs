//! Typed errors of the data layer; each names the file and the expected vs found values.

use std::path::PathBuf;

use thiserror::Error;

/// Errors returned by `tnml-data`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// Reading a file failed.
    #[error("{}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A gzip stream is corrupt or ends early.
    #[error("{}: bad or truncated gzip stream", file.display())]
    Gzip {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The IDX magic number is wrong.
    #[error("{}: not an IDX file of {expected}: magic number {found:#010x} ({why})", file.display())]
    BadMagic {
        /// The file.
        file: PathBuf,
        /// What was expected, in words.
        expected: &'static str,
        /// The magic number found.
        found: u32,
        /// Why it does not fit.
        why: String,
    },
    /// The IDX file has the wrong number of dimensions.
    #[error("{}: IDX file has {found} dimensions, expected {expected}", file.display())]
    BadDimCount {
        /// The file.
        file: PathBuf,
        /// Expected number.
        expected: usize,
        /// Found number.
        found: usize,
    },
    /// The file is shorter than its header says.
    #[error("{}: truncated: header promises {expected} bytes, file has {found}", file.display())]
    Truncated {
        /// The file.
        file: PathBuf,
        /// Bytes the header promises (header included).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file is longer than its header says.
    #[error("{}: {found} bytes, but the header describes {expected}: trailing data", file.display())]
    TrailingBytes {
        /// The file.
        file: PathBuf,
        /// Bytes the header describes.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// A decompressed stream that goes on past what its header describes (read no further).
    #[error("{}: the data goes on past the {expected} bytes its header describes (trailing data, or a gzip bomb)", file.display())]
    Overlong {
        /// The file.
        file: PathBuf,
        /// Bytes the header describes.
        expected: u64,
    },
    /// A header that claims more data than any data set tnml reads.
    #[error("{}: the header claims {claimed} bytes, more than the {limit} bytes tnml reads from one file", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Bytes claimed.
        claimed: u64,
        /// The limit.
        limit: u64,
    },
    /// Images and labels disagree in count.
    #[error("{} has {images} images but {} has {labels} labels", images_file.display(), labels_file.display())]
    CountMismatch {
        /// Images file.
        images_file: PathBuf,
        /// Number of images.
        images: usize,
        /// Labels file.
        labels_file: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A label is outside `0..classes`.
    #[error("{}: label {label} at index {index} is outside 0..{classes}", file.display())]
    LabelOutOfRange {
        /// The file.
        file: PathBuf,
        /// Position.
        index: usize,
        /// The label.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A CIFAR-10 binary file is not a whole number of 3073-byte records.
    #[error("{}: {len} bytes is not a whole number of {record}-byte CIFAR-10 records ({whole} records + {rest} bytes)", file.display(), whole = len / record, rest = len % record)]
    CifarRecordLength {
        /// The file.
        file: PathBuf,
        /// File length in bytes.
        len: usize,
        /// Record length.
        record: usize,
    },
    /// A checksum does not match.
    #[error("{}: {algorithm} checksum mismatch: expected {expected}, found {found}", file.display())]
    Checksum {
        /// The file.
        file: PathBuf,
        /// "SHA-256 of the uncompressed data", "MD5 of the archive".
        algorithm: &'static str,
        /// Expected hex digest.
        expected: String,
        /// Found hex digest.
        found: String,
    },
    /// A dataset file's name is taken by something that is not a regular file.
    #[error("{} is {kind}, not a data file: replace it with the file, or remove it and fetch the dataset again", file.display())]
    NotAFile {
        /// The path.
        file: PathBuf,
        /// What it is ("a FIFO", "a character device", "a directory", ...).
        kind: &'static str,
    },
    /// The dataset files are not there. Front ends add how to fetch them (`tnml data fetch
    /// --dataset {cli_name}`, `--data-dir`, Python's `data_dir=`).
    #[error("{dataset} not found in {}: missing {}", dir.display(), missing.join(", "))]
    NotFound {
        /// Dataset name.
        dataset: &'static str,
        /// Its command-line name.
        cli_name: &'static str,
        /// Directory searched.
        dir: PathBuf,
        /// Missing file names.
        missing: Vec<String>,
    },
    /// A download failed on every mirror.
    #[error("downloading {file} failed: {reason}")]
    Download {
        /// File name.
        file: String,
        /// What went wrong on each mirror.
        reason: String,
    },
    /// 2x2 pooling of images with an odd side.
    #[error("2x2 pooling needs even sides, images are {height}x{width}")]
    OddSides {
        /// The images' height.
        height: usize,
        /// The images' width.
        width: usize,
    },
    /// Padding to a frame smaller than the images.
    #[error("cannot pad {height}x{width} images to the smaller {target_height}x{target_width}")]
    PadSmaller {
        /// The images' height.
        height: usize,
        /// The images' width.
        width: usize,
        /// The frame's height.
        target_height: usize,
        /// The frame's width.
        target_width: usize,
    },
    /// Images with several channels asked to become more channels, or grey images expected.
    #[error("{what} takes one-channel (grey) images, these have {channels} channels")]
    NotGrey {
        /// What needs grey images ("repeating channels", "the MPS classifier on CIFAR-10").
        what: String,
        /// The images' channel count.
        channels: usize,
    },
    /// Per-channel normalization statistics of the wrong length.
    #[error("normalization has {means} means and {stds} standard deviations for {channels} channels")]
    NormalizationShape {
        /// Number of means given.
        means: usize,
        /// Number of standard deviations given.
        stds: usize,
        /// The images' channel count.
        channels: usize,
    },
    /// A standard deviation that is zero, negative or NaN.
    #[error("standard deviation {value} must be positive")]
    NonPositiveStd {
        /// The value.
        value: f32,
    },
    /// A split that selects no image: an error rate of nothing is not 0.
    #[error("the {split} set of {dataset} is empty ({why}): an error rate of nothing is not 0")]
    EmptySplit {
        /// "training" or "test".
        split: &'static str,
        /// The dataset's name.
        dataset: &'static str,
        /// Why it is empty ("the limit is 0", "<dir> holds no image").
        why: String,
    },
    /// A validation fraction outside `[0, 1)`.
    #[error("validation fraction {fraction} must lie in [0, 1)")]
    ValidationFraction {
        /// The fraction.
        fraction: f64,
    },
    /// A batch size of 0.
    #[error("batch size is 0: it must be at least 1")]
    ZeroBatch,
    /// An IDX image file whose image size is not the dataset's.
    #[error("{}: images are {found_height}x{found_width}, {dataset} has {height}x{width}", file.display())]
    ImageShape {
        /// The file.
        file: PathBuf,
        /// The dataset's name.
        dataset: &'static str,
        /// Height in the file.
        found_height: usize,
        /// Width in the file.
        found_width: usize,
        /// The dataset's height.
        height: usize,
        /// The dataset's width.
        width: usize,
    },
    /// `fetch` of a dataset that ships with the repository.
    #[error("{dataset} ships with the repository (data/{subdir}); nothing to fetch")]
    NothingToFetch {
        /// The dataset's name.
        dataset: &'static str,
        /// Its folder under `data/`.
        subdir: &'static str,
    },
    /// An image size the images cannot be brought to (their side, or half of it by 2x2
    /// pooling). Front ends name their own option (`--image-size`, `image_size=`).
    #[error("image size {size} does not fit {height}x{width} images: use {height} or {}", height / 2)]
    ImageSize {
        /// The size asked for.
        size: usize,
        /// The images' height.
        height: usize,
        /// The images' width.
        width: usize,
    },
}

/// Result alias of the data layer.
pub type Result<T> = std::result::Result<T, DataError>;

/// Wraps an I/O error with its file.
pub(crate) fn io_err(file: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
    let file = file.into();
    move |source| DataError::Io { file, source }
}
