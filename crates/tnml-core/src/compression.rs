//! Compression ratio of MPO layers against the dense layers they replace.
//!
//! Gao et al. (2020) report `rho = (MPO parameters) / (dense parameters)` summed over the
//! replaced layers only; Novikov et al. (2015) report its inverse, the compression factor.

use std::iter::Sum;
use std::ops::Add;

/// Parameter counts of one or more MPO layers and of the dense layers they stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compression {
    /// Parameters of the MPO cores.
    pub mpo_params: usize,
    /// Parameters of the dense matrices (rows * cols, biases excluded).
    pub dense_params: usize,
}

impl Compression {
    /// `rho = mpo_params / dense_params` (Gao et al. 2020); 0 for no dense parameters.
    pub fn ratio(&self) -> f64 {
        if self.dense_params == 0 {
            0.0
        } else {
            self.mpo_params as f64 / self.dense_params as f64
        }
    }

    /// `1 / rho`, the compression factor (Novikov et al. 2015); infinite for no MPO parameters.
    pub fn factor(&self) -> f64 {
        self.dense_params as f64 / self.mpo_params as f64
    }
}

impl Add for Compression {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self {
            mpo_params: self.mpo_params + rhs.mpo_params,
            dense_params: self.dense_params + rhs.dense_params,
        }
    }
}

impl Sum for Compression {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}
