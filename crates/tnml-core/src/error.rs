//! Typed errors of the tensor-network core.
//!
//! Every variant that comes from user input carries the numbers involved, so the message alone
//! says what to fix ("in_modes multiply to 780, matrix has 784 columns").

use thiserror::Error;

/// Errors returned by `tnml-core`.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A list of modes (local dimensions) is empty.
    #[error("{what} is empty: at least one mode is needed")]
    EmptyModes {
        /// Which list ("in_modes", "out_modes", "phys_dims").
        what: &'static str,
    },
    /// A mode (local dimension) is zero.
    #[error("{what}[{index}] is 0: every mode must be at least 1")]
    ZeroMode {
        /// Which list.
        what: &'static str,
        /// Position of the zero entry.
        index: usize,
    },
    /// in_modes and out_modes have different lengths.
    #[error(
        "in_modes has {in_len} entries but out_modes has {out_len}: an MPO needs one (in, out) pair per site"
    )]
    ModeCountMismatch {
        /// Length of in_modes.
        in_len: usize,
        /// Length of out_modes.
        out_len: usize,
    },
    /// The product of a mode list does not match the size of the axis it factorizes.
    #[error("{what} multiply to {product}, {target} has {expected} {axis}")]
    ModeProductMismatch {
        /// Which list.
        what: &'static str,
        /// Product of the modes (saturating).
        product: usize,
        /// What it should factorize ("matrix", "vector").
        target: &'static str,
        /// The size of that axis.
        expected: usize,
        /// "columns", "rows" or "entries".
        axis: &'static str,
    },
    /// An MPO file that cannot be read or written as asked.
    #[error("{file}: {reason}")]
    MpoFile {
        /// The file (or what is written).
        file: String,
        /// What is wrong, with the numbers.
        reason: String,
    },
    /// `max_bond` of a truncation is zero.
    #[error("max_bond is 0: a bond dimension must be at least 1")]
    ZeroMaxBond,
    /// `min_bond` is zero or larger than `max_bond`.
    #[error("min_bond is {min_bond} with max_bond {max_bond}: need 1 <= min_bond <= max_bond")]
    InvalidMinBond {
        /// Requested minimum.
        min_bond: usize,
        /// Requested maximum.
        max_bond: usize,
    },
    /// The cutoff is outside `[0, 1)` or not a number.
    #[error("cutoff is {0}: it is a relative discarded weight and must lie in [0, 1)")]
    InvalidCutoff(f64),
    /// A bond index is outside `1..len`.
    #[error("bond {bond} is out of range: a network of {len} sites has bonds 1..={last} (bond = number of sites to its left)", last = len.saturating_sub(1))]
    BondOutOfRange {
        /// Requested bond.
        bond: usize,
        /// Number of sites.
        len: usize,
    },
    /// A site index is outside `0..len`.
    #[error("site {site} is out of range: the network has {len} sites (0..={last})", last = len.saturating_sub(1))]
    SiteOutOfRange {
        /// Requested site.
        site: usize,
        /// Number of sites.
        len: usize,
    },
    /// An input contains NaN or an infinity.
    #[error("{what} has a non-finite entry {value} at {position}")]
    NonFinite {
        /// What was checked.
        what: &'static str,
        /// Where, as text ("(3, 7)", "index 12").
        position: String,
        /// The offending value.
        value: f64,
    },
    /// A tensor does not have the shape its position requires.
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// What was checked.
        what: String,
        /// Expected shape or size, as text.
        expected: String,
        /// Actual shape or size, as text.
        got: String,
    },
    /// A dense result would not fit in memory.
    #[error("{what} would have {entries} entries, more than the limit of {limit}")]
    TooLarge {
        /// What would be built.
        what: &'static str,
        /// Number of entries it would need (saturating).
        entries: usize,
        /// The limit.
        limit: usize,
    },
    /// The state (or matrix) is zero, so its normalized form is undefined.
    #[error("the {what} is zero: its normalized form (and entanglement) is undefined")]
    ZeroNorm {
        /// What was zero.
        what: &'static str,
    },
    /// The SVD did not converge.
    #[error("SVD of a {rows}x{cols} matrix did not converge")]
    SvdNoConvergence {
        /// Rows of the matrix.
        rows: usize,
        /// Columns of the matrix.
        cols: usize,
    },
}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, CoreError>;

/// Returns an error naming the first non-finite entry of `data` by its flat index.
pub(crate) fn check_finite(what: &'static str, data: &[f64]) -> Result<()> {
    match data.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(CoreError::NonFinite {
            what,
            position: format!("index {i}"),
            value: data[i],
        }),
    }
}

/// Checks a list of modes: not empty, no zero entry (callers outside the core check modes
/// before they build a matrix of that size).
///
/// # Errors
/// [`CoreError::EmptyModes`], [`CoreError::ZeroMode`].
pub fn check_modes(what: &'static str, modes: &[usize]) -> Result<()> {
    if modes.is_empty() {
        return Err(CoreError::EmptyModes { what });
    }
    if let Some(index) = modes.iter().position(|&m| m == 0) {
        return Err(CoreError::ZeroMode { what, index });
    }
    Ok(())
}

/// Saturating product of a list of dimensions.
pub(crate) fn saturating_product(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
}
