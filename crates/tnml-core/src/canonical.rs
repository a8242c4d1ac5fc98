//! Canonical forms and truncation of an [`Mps`] by QR and SVD sweeps.
//!
//! A site is *left-canonical* when its `(left*phys, right)` matrix has orthonormal columns and
//! *right-canonical* when its `(left, phys*right)` matrix has orthonormal rows. With center `c`,
//! sites `< c` are left-canonical and sites `> c` right-canonical, so the norm of the state is the
//! norm of site `c` and the Schmidt values of bond `c` (or `c + 1`) are singular values of site `c`.
//!
//! Moving the center one site costs one thin QR, O(l d r min(l d, r)). Thin factorizations also
//! lower every bond above its rank cap, which is how `canonicalize` removes redundant dimensions.

use crate::error::{CoreError, Result};
use crate::linalg::{svd_unchecked, thin_lq, thin_qr, to_row_major, view};
use crate::mps::Mps;
use crate::site::SiteTensor;
use crate::trunc::{BondClamp, TruncParams, TruncReport, Truncation};

impl Mps {
    /// QR of site `k` as `(left*phys, right)`; `Q` stays, `R` moves into site `k + 1`.
    fn left_orthonormalize(&mut self, k: usize) {
        let (l, p, r) = (self.sites[k].left(), self.sites[k].phys(), self.sites[k].right());
        let (q, rf) = thin_qr(view(self.sites[k].data(), l * p, r));
        let new_r = q.ncols();
        self.sites[k] = SiteTensor::from_parts(l, p, new_r, to_row_major(q.as_ref()));
        let next = &self.sites[k + 1];
        let (p2, r2) = (next.phys(), next.right());
        let merged = rf.as_ref() * view(next.data(), r, p2 * r2);
        self.sites[k + 1] = SiteTensor::from_parts(new_r, p2, r2, to_row_major(merged.as_ref()));
    }

    /// LQ of site `k` as `(left, phys*right)`; `Q` stays, `L` moves into site `k - 1`.
    fn right_orthonormalize(&mut self, k: usize) {
        let (l, p, r) = (self.sites[k].left(), self.sites[k].phys(), self.sites[k].right());
        let (lf, q) = thin_lq(view(self.sites[k].data(), l, p * r));
        let new_l = q.nrows();
        self.sites[k] = SiteTensor::from_parts(new_l, p, r, to_row_major(q.as_ref()));
        let prev = &self.sites[k - 1];
        let (l0, p0) = (prev.left(), prev.phys());
        let merged = view(prev.data(), l0 * p0, l) * lf.as_ref();
        self.sites[k - 1] = SiteTensor::from_parts(l0, p0, new_l, to_row_major(merged.as_ref()));
    }

    /// Brings the state into mixed canonical form with orthogonality center `center`.
    ///
    /// The state (`to_dense`) is unchanged up to rounding. If a center is already known only the
    /// sites between the old and the new center are touched.
    ///
    /// # Errors
    /// [`CoreError::SiteOutOfRange`].
    pub fn canonicalize(&mut self, center: usize) -> Result<()> {
        let n = self.len();
        if center >= n {
            return Err(CoreError::SiteOutOfRange { site: center, len: n });
        }
        match self.center {
            Some(c0) if c0 <= center => (c0..center).for_each(|k| self.left_orthonormalize(k)),
            Some(c0) => (center + 1..=c0).rev().for_each(|k| self.right_orthonormalize(k)),
            None => {
                (0..center).for_each(|k| self.left_orthonormalize(k));
                (center + 1..n).rev().for_each(|k| self.right_orthonormalize(k));
            }
        }
        self.center = Some(center);
        Ok(())
    }

    /// Brings every site whose largest entry lies outside `[1e-100, 1e100]` to order 1 by a power
    /// of two, exactly, and returns the total exponent removed (`state = 2^e * rescaled`).
    /// Decompositions of states of 1e200 or 1e-200 would otherwise over- or underflow in their
    /// norms and SVDs; states in the ordinary range are left bit for bit as they are.
    pub(crate) fn normalize_extreme_sites(&mut self) -> i32 {
        let mut total = 0;
        for site in &mut self.sites {
            let peak = site.data().iter().fold(0.0f64, |m, x| m.max(x.abs()));
            if peak > 0.0 && peak.is_finite() && !(1e-100..=1e100).contains(&peak) {
                let e = peak.log2().round() as i32;
                scale_pow2(site.data_mut(), -e);
                total += e;
            }
        }
        total
    }

    /// Multiplies the orthogonality center (or site 0) by `2^e`, exactly.
    pub(crate) fn restore_pow2(&mut self, e: i32) {
        let k = self.center.unwrap_or(0);
        scale_pow2(self.sites[k].data_mut(), e);
    }

    /// Multiplies the state by `factor` (applied to the orthogonality center, or site 0).
    ///
    /// # Errors
    /// A non-finite factor.
    pub fn scale(&mut self, factor: f64) -> Result<()> {
        if !factor.is_finite() {
            return Err(CoreError::NonFinite {
                what: "scale factor",
                position: "scalar".into(),
                value: factor,
            });
        }
        let k = self.center.unwrap_or(0);
        self.sites[k].data_mut().iter_mut().for_each(|x| *x *= factor);
        Ok(())
    }

    /// One step of a right-to-left SVD sweep: splits site `k` (as `(left, phys*right)`) by a
    /// truncated SVD, keeps `Vt` there (right-canonical) and multiplies `U S` into site `k - 1`.
    /// Returns the kept singular values and what was dropped (at bond `k`).
    ///
    /// When every site right of `k` is right-canonical and everything left of it is
    /// left-canonical (center `k`), the singular values are the Schmidt values of bond `k`.
    /// Shared by [`Mps::truncate`] and [`Mps::entanglement_profile`].
    ///
    /// # Complexity
    /// One SVD of `(l, d r)` and one GEMM `(l0 d0, l) x (l, kept)`.
    pub(crate) fn split_right_to_left(
        &mut self,
        k: usize,
        params: &TruncParams,
    ) -> Result<(Vec<f64>, Truncation)> {
        let (l, p, r) = (self.sites[k].left(), self.sites[k].phys(), self.sites[k].right());
        let svd = svd_unchecked(view(self.sites[k].data(), l, p * r), params)?;
        let kept = svd.s.len();
        self.sites[k] = SiteTensor::from_parts(kept, p, r, to_row_major(svd.vt.as_ref()));
        let mut us = to_row_major(svd.u.as_ref());
        for row in us.chunks_mut(kept) {
            row.iter_mut().zip(&svd.s).for_each(|(x, s)| *x *= s);
        }
        let prev = &self.sites[k - 1];
        let (l0, p0) = (prev.left(), prev.phys());
        let merged = view(prev.data(), l0 * p0, l) * view(&us, l, kept);
        self.sites[k - 1] = SiteTensor::from_parts(l0, p0, kept, to_row_major(merged.as_ref()));
        Ok((
            svd.s,
            Truncation {
                bond: k,
                ..svd.truncation
            },
        ))
    }

    /// Truncates every bond under `params`: canonicalize to the last site, then sweep right to
    /// left splitting each site by a truncated SVD. Ends right-canonical with center 0.
    ///
    /// Each split sees the Schmidt values of the whole (current) state at that bond, so the
    /// dropped pieces are orthogonal and `report.total_discarded_weight()` equals
    /// `||psi - psi~||^2 / ||psi||^2`. The norm is not restored: call [`Mps::scale`] if needed.
    ///
    /// # Errors
    /// Invalid `params`, or an SVD that did not converge.
    ///
    /// # Complexity
    /// O(N d D^3).
    pub fn truncate(&mut self, params: &TruncParams) -> Result<TruncReport> {
        params.validate()?;
        let n = self.len();
        let caps = self.rank_caps();
        let e = self.normalize_extreme_sites();
        self.canonicalize(n - 1)?;
        let mut report = TruncReport {
            initial_norm2: self.sites[n - 1].data().iter().map(|x| x * x).sum(),
            ..TruncReport::default()
        };
        for k in (1..n).rev() {
            if params.is_capped() && params.max_bond > caps[k - 1] {
                report.clamps.push(BondClamp {
                    bond: k,
                    requested: params.max_bond,
                    cap: caps[k - 1],
                });
            }
            let (_, truncation) = self.split_right_to_left(k, params)?;
            report.bonds.push(truncation);
        }
        self.center = Some(0);
        report.bonds.reverse();
        report.clamps.reverse();
        // the report's norms stay those of the rescaled state (their ratios are the same)
        self.restore_pow2(e);
        Ok(report)
    }
}

impl Mps {
    /// Truncates bond `b` to at most `max_bonds[b - 1]` Schmidt values, each bond its own cap
    /// (no cutoff): the same right-to-left sweep as [`Mps::truncate`], so the report's
    /// `total_discarded_weight()` is the squared relative error.
    ///
    /// # Errors
    /// A list of the wrong length, a cap of 0, an SVD that did not converge.
    pub fn truncate_to_bonds(&mut self, max_bonds: &[usize]) -> Result<TruncReport> {
        let n = self.len();
        if max_bonds.len() + 1 != n {
            return Err(CoreError::ShapeMismatch {
                what: format!("bond dimensions for {n} sites"),
                expected: format!("{} entries", n.saturating_sub(1)),
                got: format!("{} entries", max_bonds.len()),
            });
        }
        if max_bonds.contains(&0) {
            return Err(CoreError::ZeroMaxBond);
        }
        let e = self.normalize_extreme_sites();
        self.canonicalize(n - 1)?;
        let mut report = TruncReport {
            initial_norm2: self.sites[n - 1].data().iter().map(|x| x * x).sum(),
            ..TruncReport::default()
        };
        for k in (1..n).rev() {
            let (_, truncation) = self.split_right_to_left(k, &TruncParams::max_bond(max_bonds[k - 1]))?;
            report.bonds.push(truncation);
        }
        self.center = Some(0);
        report.bonds.reverse();
        report.clamps.reverse();
        // the report's norms stay those of the rescaled state (their ratios are the same)
        self.restore_pow2(e);
        Ok(report)
    }
}

/// `x *= 2^e` for every entry, in steps that stay inside f64's range (exact: only exponents
/// change, barring subnormal results).
fn scale_pow2(data: &mut [f64], e: i32) {
    let mut rest = e;
    while rest != 0 {
        let step = rest.clamp(-1000, 1000);
        let f = 2f64.powi(step);
        data.iter_mut().for_each(|x| *x *= f);
        rest -= step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_mps(dims: &[usize], bond: usize, seed: u64) -> Mps {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let n = dims.len();
        let sites = (0..n)
            .map(|k| {
                let l = if k == 0 { 1 } else { bond };
                let r = if k == n - 1 { 1 } else { bond };
                SiteTensor::new(l, dims[k], r, (0..l * dims[k] * r).map(|_| next()).collect()).unwrap()
            })
            .collect();
        Mps::from_sites(sites).unwrap()
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn canonicalize_keeps_the_state_and_makes_isometries() {
        let mut m = random_mps(&[2, 3, 2, 3, 2], 4, 7);
        let before = m.to_dense().unwrap();
        m.canonicalize(2).unwrap();
        assert_eq!(m.ortho_center(), Some(2));
        assert!(max_abs_diff(&before, &m.to_dense().unwrap()) < 1e-12);
        // bond 1 is capped at 2 by the first site
        assert_eq!(m.bond_dims()[0], 2);
        m.canonicalize(4).unwrap();
        m.canonicalize(0).unwrap();
        assert!(max_abs_diff(&before, &m.to_dense().unwrap()) < 1e-12);
    }

    #[test]
    fn truncate_to_full_rank_is_exact_and_reports_nothing_dropped() {
        let mut m = random_mps(&[2, 2, 2, 2, 2, 2], 8, 3);
        let before = m.to_dense().unwrap();
        let report = m.truncate(&TruncParams::exact()).unwrap();
        assert!(report.total_discarded_weight() < 1e-14);
        assert_eq!(m.bond_dims(), vec![2, 4, 8, 4, 2]);
        assert!(max_abs_diff(&before, &m.to_dense().unwrap()) < 1e-12);
    }

    #[test]
    fn truncate_reports_the_true_error() {
        let mut m = random_mps(&[3, 3, 3, 3, 3], 9, 11);
        let before = m.to_dense().unwrap();
        let report = m.truncate(&TruncParams::max_bond(3)).unwrap();
        assert!(m.max_bond_dim() <= 3);
        let after = m.to_dense().unwrap();
        let err2: f64 = before.iter().zip(&after).map(|(x, y)| (x - y).powi(2)).sum();
        let norm2: f64 = before.iter().map(|x| x * x).sum();
        let w = report.total_discarded_weight();
        assert!(w > 1e-4, "a random state must lose weight at bond 3, got {w}");
        assert!(
            (err2 / norm2 - w).abs() < 1e-10 * w.max(1.0),
            "{} vs {w}",
            err2 / norm2
        );
    }

    #[test]
    fn canonicalize_rejects_a_site_out_of_range() {
        let mut m = random_mps(&[2, 2], 2, 1);
        assert_eq!(
            m.canonicalize(2).unwrap_err(),
            CoreError::SiteOutOfRange { site: 2, len: 2 }
        );
    }
}
