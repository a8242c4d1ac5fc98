//! Truncation vocabulary shared by every decomposition: [`TruncParams`] says what to keep,
//! [`Truncation`] says what was dropped.
//!
//! For singular values `s_1 >= s_2 >= ... >= s_n` the kept rank `k` is the smallest number such
//! that the *relative discarded weight*
//!
//! ```text
//!     w(k) = sum_{i > k} s_i^2 / sum_i s_i^2
//! ```
//!
//! is at most `cutoff`, then clamped to `[min_bond, max_bond]` and to `n` (ITensor's `cutoff`,
//! `maxdim`, `mindim`). Because the dropped singular directions are orthogonal to the kept ones,
//! `w(k) = ||A - A_k||_F^2 / ||A||_F^2` exactly (Eckart–Young).

use crate::error::{CoreError, Result};

/// What a truncating decomposition may keep.
///
/// `max_bond = usize::MAX` ([`TruncParams::UNLIMITED`]) means no cap; `cutoff = 0` keeps the
/// numerical rank: singular values `s_i <= eps * max(m, n) * s_1` are rounding noise (as in
/// NumPy's `matrix_rank`) and are dropped, never below `min_bond`. Their weight, at most about
/// `(eps * max(m, n))^2`, is still reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruncParams {
    /// Largest number of singular values kept at any bond (>= 1).
    pub max_bond: usize,
    /// Largest relative discarded weight allowed, in `[0, 1)`.
    pub cutoff: f64,
    /// Smallest number of singular values kept (>= 1, <= `max_bond`), unless the matrix has fewer.
    pub min_bond: usize,
}

impl TruncParams {
    /// No cap on the bond dimension.
    pub const UNLIMITED: usize = usize::MAX;

    /// Exact decomposition: keep everything.
    pub const fn exact() -> Self {
        Self {
            max_bond: Self::UNLIMITED,
            cutoff: 0.0,
            min_bond: 1,
        }
    }

    /// Keep at most `max_bond` singular values, no cutoff.
    pub const fn max_bond(max_bond: usize) -> Self {
        Self {
            max_bond,
            cutoff: 0.0,
            min_bond: 1,
        }
    }

    /// Keep the fewest singular values whose dropped relative weight is at most `cutoff`.
    pub const fn cutoff(cutoff: f64) -> Self {
        Self {
            max_bond: Self::UNLIMITED,
            cutoff,
            min_bond: 1,
        }
    }

    /// From the command line's two options: an optional cap (`None` = no cap) and a cutoff.
    /// Not validated: call [`TruncParams::validate`].
    pub const fn new(max_bond: Option<usize>, cutoff: f64) -> Self {
        let max_bond = match max_bond {
            Some(b) => b,
            None => Self::UNLIMITED,
        };
        Self {
            max_bond,
            cutoff,
            min_bond: 1,
        }
    }

    /// Returns `self` with another cutoff.
    pub const fn with_cutoff(mut self, cutoff: f64) -> Self {
        self.cutoff = cutoff;
        self
    }

    /// Returns `self` with another minimum bond dimension.
    pub const fn with_min_bond(mut self, min_bond: usize) -> Self {
        self.min_bond = min_bond;
        self
    }

    /// Whether `max_bond` is a real cap (not [`TruncParams::UNLIMITED`]).
    pub const fn is_capped(&self) -> bool {
        self.max_bond != Self::UNLIMITED
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`CoreError::ZeroMaxBond`], [`CoreError::InvalidMinBond`], [`CoreError::InvalidCutoff`].
    pub fn validate(&self) -> Result<()> {
        if self.max_bond == 0 {
            return Err(CoreError::ZeroMaxBond);
        }
        if self.min_bond == 0 || self.min_bond > self.max_bond {
            return Err(CoreError::InvalidMinBond {
                min_bond: self.min_bond,
                max_bond: self.max_bond,
            });
        }
        if !(self.cutoff >= 0.0 && self.cutoff < 1.0) {
            return Err(CoreError::InvalidCutoff(self.cutoff));
        }
        Ok(())
    }

    /// The rank to keep for singular values `s` (nonincreasing) and the weights it drops.
    ///
    /// Values at or below `zero_tol` count as numerical zeros: they are dropped even at
    /// `cutoff = 0` (but never below `min_bond`). Returns `(kept, discarded_norm2, total_norm2)`.
    /// Cost O(n).
    pub(crate) fn choose_rank(&self, s: &[f64], zero_tol: f64) -> (usize, f64, f64) {
        let n = s.len();
        let total: f64 = s.iter().map(|x| x * x).sum();
        let numerical_rank = s.iter().take_while(|&&x| x > zero_tol).count();
        // Smallest k with tail(k) <= cutoff * total; the tail is summed from the small end so
        // that tiny values are not lost to rounding against the large ones.
        let allowed = self.cutoff * total;
        let mut k = n;
        let mut tail = 0.0;
        while k > 0 {
            let next = tail + s[k - 1] * s[k - 1];
            if next > allowed {
                break;
            }
            tail = next;
            k -= 1;
        }
        let k = k.min(numerical_rank).max(self.min_bond).min(self.max_bond).min(n);
        // `+ 0.0`: an empty float sum is -0.0, which reports print as "-0.000e0"
        let discarded: f64 = s[k..].iter().rev().map(|x| x * x).sum::<f64>() + 0.0;
        (k, discarded, total)
    }
}

impl Default for TruncParams {
    fn default() -> Self {
        Self::exact()
    }
}

/// What one truncated split dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truncation {
    /// Bond where the split happened (number of sites to its left); 0 for a lone matrix.
    pub bond: usize,
    /// Number of singular values kept.
    pub kept: usize,
    /// Number of singular values the matrix had (its smaller dimension).
    pub full_rank: usize,
    /// Sum of the dropped `s_i^2` divided by the sum of all `s_i^2` of this split (0 if the
    /// matrix was zero).
    pub discarded_weight: f64,
    /// Sum of the dropped `s_i^2` (absolute).
    pub discarded_norm2: f64,
}

/// A bond whose requested dimension exceeded what the network can carry there.
///
/// The rank cap at bond `b` is `min(prod of dims left of b, prod of dims right of b)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BondClamp {
    /// The bond.
    pub bond: usize,
    /// What was asked for.
    pub requested: usize,
    /// What was used instead (the rank cap).
    pub cap: usize,
}

/// Everything a multi-bond truncation dropped.
#[must_use = "a truncation report says what was dropped; record or check it"]
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TruncReport {
    /// One entry per bond, in bond order (bond 1 first) whichever way the sweep ran.
    pub bonds: Vec<Truncation>,
    /// Bonds where the requested `max_bond` exceeded the rank cap and was lowered to it.
    pub clamps: Vec<BondClamp>,
    /// Squared norm of the input before truncation.
    pub initial_norm2: f64,
}

impl TruncReport {
    /// Total relative discarded weight `sum_b discarded_norm2_b / ||A||^2`.
    ///
    /// For TT-SVD and for a canonical-form sweep the dropped pieces are mutually orthogonal, so
    /// this equals `||A - A~||_F^2 / ||A||_F^2` up to rounding.
    pub fn total_discarded_weight(&self) -> f64 {
        if self.initial_norm2 == 0.0 {
            return 0.0;
        }
        (self.bonds.iter().map(|t| t.discarded_norm2).sum::<f64>() + 0.0) / self.initial_norm2
    }

    /// The largest number of singular values kept at any bond.
    pub fn max_kept(&self) -> usize {
        self.bonds.iter().map(|t| t.kept).max().unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_keeps_fewest_values_within_weight() {
        let s = [3.0, 2.0, 1.0, 0.5];
        // total = 9 + 4 + 1 + 0.25 = 14.25; dropping 0.5 and 1 costs 1.25/14.25 = 0.0877
        let (k, d, t) = TruncParams::cutoff(0.09).choose_rank(&s, 0.0);
        assert_eq!(k, 2);
        assert!((d - 1.25).abs() < 1e-15 && (t - 14.25).abs() < 1e-15);
        let (k, _, _) = TruncParams::cutoff(0.08).choose_rank(&s, 0.0);
        assert_eq!(k, 3);
    }

    #[test]
    fn max_and_min_bond_clamp_the_rank() {
        let s = [3.0, 2.0, 1.0, 0.5];
        assert_eq!(TruncParams::max_bond(1).choose_rank(&s, 0.0).0, 1);
        assert_eq!(
            TruncParams::cutoff(0.5).with_min_bond(3).choose_rank(&s, 0.0).0,
            3
        );
        assert_eq!(TruncParams::exact().choose_rank(&s, 0.0).0, 4);
        assert_eq!(TruncParams::exact().choose_rank(&[2.0, 0.0, 0.0], 0.0).0, 1);
        assert_eq!(TruncParams::exact().choose_rank(&[0.0, 0.0], 0.0).0, 1);
        assert_eq!(TruncParams::cutoff(0.5).choose_rank(&[0.0, 0.0], 0.0).0, 1);
        // rounding noise below the tolerance is not rank
        assert_eq!(TruncParams::exact().choose_rank(&[1.0, 0.5, 1e-17], 1e-15).0, 2);
        assert_eq!(
            TruncParams::exact()
                .with_min_bond(3)
                .choose_rank(&[1.0, 0.5, 1e-17], 1e-15)
                .0,
            3
        );
    }

    #[test]
    fn nothing_dropped_is_a_positive_zero() {
        let (k, discarded, _) = TruncParams::exact().choose_rank(&[3.0, 2.0, 1.0], 0.0);
        assert_eq!(k, 3);
        assert!(discarded == 0.0 && discarded.is_sign_positive(), "{discarded}");
        let report = TruncReport {
            bonds: Vec::new(),
            clamps: Vec::new(),
            initial_norm2: 2.0,
        };
        assert!(report.total_discarded_weight().is_sign_positive());
        assert_eq!(format!("{:.3e}", report.total_discarded_weight()), "0.000e0");
    }

    #[test]
    fn validate_rejects_bad_parameters() {
        assert_eq!(TruncParams::max_bond(0).validate(), Err(CoreError::ZeroMaxBond));
        assert!(matches!(
            TruncParams::cutoff(1.0).validate(),
            Err(CoreError::InvalidCutoff(_))
        ));
        assert!(matches!(
            TruncParams::cutoff(-0.1).validate(),
            Err(CoreError::InvalidCutoff(_))
        ));
        assert!(matches!(
            TruncParams::cutoff(f64::NAN).validate(),
            Err(CoreError::InvalidCutoff(_))
        ));
        assert!(matches!(
            TruncParams::max_bond(2).with_min_bond(3).validate(),
            Err(CoreError::InvalidMinBond {
                min_bond: 3,
                max_bond: 2
            })
        ));
        assert!(TruncParams::max_bond(4).with_cutoff(1e-10).validate().is_ok());
    }
}
