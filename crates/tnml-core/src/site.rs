//! [`SiteTensor`]: one rank-3 tensor of a matrix product state, `[left, phys, right]`, row-major.

use crate::error::{check_finite, CoreError, Result};

/// A site tensor `A[l, p, r]` stored row-major: entry `(l, p, r)` sits at `(l * phys + p) * right + r`.
///
/// The storage reads without copying as the *left-grouped* matrix `(left*phys, right)` (the form
/// that is an isometry in a left-canonical site) or the *right-grouped* matrix
/// `(left, phys*right)` (an isometry in a right-canonical site).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteTensor {
    left: usize,
    phys: usize,
    right: usize,
    data: Vec<f64>,
}

impl SiteTensor {
    /// Builds a site tensor from row-major data.
    ///
    /// # Errors
    /// A zero dimension, `data.len() != left*phys*right`, or a non-finite entry.
    pub fn new(left: usize, phys: usize, right: usize, data: Vec<f64>) -> Result<Self> {
        if left == 0 || phys == 0 || right == 0 {
            return Err(CoreError::ShapeMismatch {
                what: "site tensor dimensions".into(),
                expected: "all >= 1".into(),
                got: format!("[{left}, {phys}, {right}]"),
            });
        }
        let expected = left.saturating_mul(phys).saturating_mul(right);
        if data.len() != expected {
            return Err(CoreError::ShapeMismatch {
                what: format!("site tensor [{left}, {phys}, {right}] data length"),
                expected: expected.to_string(),
                got: data.len().to_string(),
            });
        }
        check_finite("site tensor", &data)?;
        Ok(Self {
            left,
            phys,
            right,
            data,
        })
    }

    /// Builds a site tensor from trusted internal data (shape checked in debug builds only).
    pub(crate) fn from_parts(left: usize, phys: usize, right: usize, data: Vec<f64>) -> Self {
        debug_assert_eq!(data.len(), left * phys * right);
        Self {
            left,
            phys,
            right,
            data,
        }
    }

    /// Left bond dimension.
    pub fn left(&self) -> usize {
        self.left
    }
    /// Physical dimension.
    pub fn phys(&self) -> usize {
        self.phys
    }
    /// Right bond dimension.
    pub fn right(&self) -> usize {
        self.right
    }
    /// Shape `[left, phys, right]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.left, self.phys, self.right]
    }
    /// Row-major entries.
    pub fn data(&self) -> &[f64] {
        &self.data
    }
    /// Entry `(l, p, r)`.
    pub fn get(&self, l: usize, p: usize, r: usize) -> f64 {
        self.data[(l * self.phys + p) * self.right + r]
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// Always false: a site has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub(crate) fn data_mut(&mut self) -> &mut [f64] {
        &mut self.data
    }
}
