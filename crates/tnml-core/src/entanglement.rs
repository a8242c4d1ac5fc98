//! Entanglement of a bipartition at each bond.
//!
//! For a state `psi` (normalized to `psi / ||psi||`) cut at bond `b`, the Schmidt values are the
//! singular values `s_i` of `psi` reshaped to `(prod_{k<b} d_k, prod_{k>=b} d_k)`, normalized so
//! that `sum s_i^2 = 1`. With `p_i = s_i^2`:
//!
//! ```text
//!   von Neumann   S   = -sum_i p_i ln p_i          (natural log)
//!   Renyi-2       S_2 = -ln sum_i p_i^2
//!   bound         S <= ln min(D_b, dim left, dim right)
//! ```
//!
//! They are read off a canonical form, never from a single core's SVD in an arbitrary gauge, so
//! they do not depend on the gauge or on the scale of any core. Queries work on a copy: the
//! caller's gauge is never moved.

use crate::bonds::rank_caps;
use crate::error::{saturating_product, CoreError, Result};
use crate::linalg::{singular_values, view};
use crate::mps::Mps;
use crate::trunc::TruncParams;

/// Entanglement of one bond.
#[derive(Debug, Clone, PartialEq)]
pub struct BondEntanglement {
    /// The bond (number of sites to its left).
    pub bond: usize,
    /// Bond dimension of the network at this bond.
    pub bond_dim: usize,
    /// Product of the physical dimensions left of the bond (saturating).
    pub left_dim: usize,
    /// Product of the physical dimensions right of the bond (saturating).
    pub right_dim: usize,
    /// von Neumann entropy, natural log.
    pub entropy: f64,
    /// Renyi-2 entropy, natural log.
    pub renyi2: f64,
    /// `ln min(bond_dim, left_dim, right_dim)`: no state of this network can exceed it.
    pub bound: f64,
    /// Schmidt values, nonincreasing, normalized to `sum s^2 = 1`.
    pub spectrum: Vec<f64>,
}

impl BondEntanglement {
    /// `entropy / bound`, in `[0, 1]`; 0 where the bound is 0 (a cut of dimension 1 carries no
    /// entanglement).
    pub fn normalized(&self) -> f64 {
        if self.bound > 0.0 {
            self.entropy / self.bound
        } else {
            0.0
        }
    }

    /// Relative discarded weight if this bond were truncated to `dim` Schmidt values,
    /// `sum_{i >= dim} s_i^2`.
    pub fn discarded_weight_at(&self, dim: usize) -> f64 {
        self.spectrum.iter().skip(dim).rev().map(|s| s * s).sum()
    }
}

/// Entanglement of every bond of a chain, bond 1 first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntanglementProfile {
    /// One entry per bond, `bonds[b - 1]` for bond `b`.
    pub bonds: Vec<BondEntanglement>,
}

impl EntanglementProfile {
    /// von Neumann entropy of each bond.
    pub fn entropies(&self) -> Vec<f64> {
        self.bonds.iter().map(|b| b.entropy).collect()
    }
    /// Bound of each bond.
    pub fn bounds(&self) -> Vec<f64> {
        self.bonds.iter().map(|b| b.bound).collect()
    }
    /// Largest entropy over bonds (0 for a single site).
    pub fn max_entropy(&self) -> f64 {
        self.bonds.iter().map(|b| b.entropy).fold(0.0, f64::max)
    }
}

/// Normalizes Schmidt values to `sum s^2 = 1`.
///
/// # Errors
/// [`CoreError::ZeroNorm`] for an all-zero spectrum.
pub fn normalize_spectrum(s: &[f64]) -> Result<Vec<f64>> {
    let n2: f64 = s.iter().map(|x| x * x).sum();
    if n2 <= 0.0 || !n2.is_finite() {
        return Err(CoreError::ZeroNorm { what: "state" });
    }
    let n = n2.sqrt();
    Ok(s.iter().map(|x| x / n).collect())
}

/// von Neumann entropy `-sum p ln p` of normalized Schmidt values (`p = s^2`).
pub fn von_neumann_entropy(spectrum: &[f64]) -> f64 {
    spectrum
        .iter()
        .map(|s| s * s)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum::<f64>()
        .max(0.0)
}

/// Renyi-2 entropy `-ln sum p^2` of normalized Schmidt values.
pub fn renyi2_entropy(spectrum: &[f64]) -> f64 {
    let purity: f64 = spectrum.iter().map(|s| s.powi(4)).sum();
    (-purity.ln()).max(0.0)
}

/// `ln min(bond_dim, left_dim, right_dim)`.
pub fn entropy_bound(bond_dim: usize, left_dim: usize, right_dim: usize) -> f64 {
    (bond_dim.min(left_dim).min(right_dim) as f64).ln()
}

impl Mps {
    /// Schmidt values of `bond`, of the normalized state, nonincreasing.
    ///
    /// # Errors
    /// [`CoreError::BondOutOfRange`], [`CoreError::ZeroNorm`] for the zero state.
    ///
    /// # Complexity
    /// One QR sweep on a copy, O(N d D^3).
    pub fn schmidt_values(&self, bond: usize) -> Result<Vec<f64>> {
        self.check_bond(bond)?;
        let mut work = self.clone();
        work.canonicalize(bond)?;
        let site = &work.sites[bond];
        let s = singular_values(view(site.data(), site.left(), site.phys() * site.right()))?;
        normalize_spectrum(&s)
    }

    /// von Neumann entanglement entropy (natural log) of `bond`.
    ///
    /// # Errors
    /// As [`Mps::schmidt_values`].
    pub fn entanglement_entropy(&self, bond: usize) -> Result<f64> {
        Ok(von_neumann_entropy(&self.schmidt_values(bond)?))
    }

    /// Renyi-2 entropy of `bond`.
    ///
    /// # Errors
    /// As [`Mps::schmidt_values`].
    pub fn renyi2_entropy(&self, bond: usize) -> Result<f64> {
        Ok(renyi2_entropy(&self.schmidt_values(bond)?))
    }

    /// `ln min(bond dim, dim left, dim right)` at `bond`.
    ///
    /// # Errors
    /// [`CoreError::BondOutOfRange`].
    pub fn entropy_bound(&self, bond: usize) -> Result<f64> {
        self.check_bond(bond)?;
        let dims = self.phys_dims();
        Ok(entropy_bound(
            self.sites[bond].left(),
            saturating_product(&dims[..bond]),
            saturating_product(&dims[bond..]),
        ))
    }

    /// Entanglement of every bond in one pass: left-canonicalize a copy, then sweep right to
    /// left with an SVD per site, so each SVD sees the Schmidt decomposition of the whole state.
    ///
    /// # Errors
    /// [`CoreError::ZeroNorm`] for the zero state; an SVD that did not converge.
    ///
    /// # Complexity
    /// O(N d D^3), the same as one canonicalization.
    pub fn entanglement_profile(&self) -> Result<EntanglementProfile> {
        let n = self.len();
        let dims = self.phys_dims();
        let caps = rank_caps(&dims);
        let bond_dims = self.bond_dims();
        let mut work = self.clone();
        // the spectrum is normalized, so the scale is free: sites of 1e200 or 1e-200 (a weight
        // of huge or tiny entries) are brought to order 1 so nothing over- or underflows
        work.normalize_extreme_sites();
        work.canonicalize(n - 1)?;
        work.normalize_extreme_sites();
        let mut bonds = Vec::with_capacity(n.saturating_sub(1));
        for k in (1..n).rev() {
            let (s, truncation) = work.split_right_to_left(k, &TruncParams::exact())?;
            let kept = truncation.kept;
            let spectrum = normalize_spectrum(&s)?;
            let (left_dim, right_dim) = (saturating_product(&dims[..k]), saturating_product(&dims[k..]));
            debug_assert!(kept <= caps[k - 1]);
            bonds.push(BondEntanglement {
                bond: k,
                bond_dim: bond_dims[k - 1],
                left_dim,
                right_dim,
                entropy: von_neumann_entropy(&spectrum),
                renyi2: renyi2_entropy(&spectrum),
                bound: entropy_bound(bond_dims[k - 1], left_dim, right_dim),
                spectrum,
            });
        }
        bonds.reverse();
        Ok(EntanglementProfile { bonds })
    }
}
