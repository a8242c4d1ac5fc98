//! [`Mpo`]: a matrix product operator (tensor-train matrix).
//!
//! ```text
//!        in_0     in_1           in_{N-1}
//!         |        |                |
//!   1 -- W[0] --- W[1] -- ... -- W[N-1] -- 1      W[k]: [left, in_k, out_k, right]
//!         |        |                |
//!        out_0    out_1          out_{N-1}
//! ```
//!
//! The dense matrix has `prod out_k` rows and `prod in_k` columns (`y = W x`, PyTorch's
//! `nn.Linear.weight`), with row index `(out_0, ..., out_{N-1})` and column index
//! `(in_0, ..., in_{N-1})`, both row-major. Stored row-major, `[left, in, out, right]` is the MPS
//! site `[left, in*out, right]`, so an `Mpo` is an [`Mps`] over the grouped pairs `(in_k, out_k)`:
//! canonical forms, truncation and entanglement are those of that state.

use faer::{Mat, MatRef};

use crate::bonds::rank_caps;
use crate::compression::Compression;
use crate::entanglement::EntanglementProfile;
use crate::error::{check_modes, saturating_product, CoreError, Result};
use crate::linalg::check_matrix;
use crate::mps::{tt_svd, tt_svd_right_to_left, Mps, DENSE_LIMIT};
use crate::site::SiteTensor;
use crate::trunc::{TruncParams, TruncReport};

/// A matrix product operator with open boundaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Mpo {
    in_modes: Vec<usize>,
    out_modes: Vec<usize>,
    state: Mps,
}

/// Validates `in_modes` / `out_modes` against a `rows x cols` matrix.
fn check_layer_modes(in_modes: &[usize], out_modes: &[usize], rows: usize, cols: usize) -> Result<()> {
    check_modes("in_modes", in_modes)?;
    check_modes("out_modes", out_modes)?;
    if in_modes.len() != out_modes.len() {
        return Err(CoreError::ModeCountMismatch {
            in_len: in_modes.len(),
            out_len: out_modes.len(),
        });
    }
    let (pi, po) = (saturating_product(in_modes), saturating_product(out_modes));
    if pi != cols {
        return Err(CoreError::ModeProductMismatch {
            what: "in_modes",
            product: pi,
            target: "matrix",
            expected: cols,
            axis: "columns",
        });
    }
    if po != rows {
        return Err(CoreError::ModeProductMismatch {
            what: "out_modes",
            product: po,
            target: "matrix",
            expected: rows,
            axis: "rows",
        });
    }
    Ok(())
}

/// Offsets that map dense `(row, col)` to the grouped index `(in_0, out_0, in_1, out_1, ...)`:
/// `grouped = row_off[row] + col_off[col]`.
fn grouped_offsets(in_modes: &[usize], out_modes: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let n = in_modes.len();
    let mut stride = vec![1usize; n];
    for k in (0..n - 1).rev() {
        stride[k] = stride[k + 1] * in_modes[k + 1] * out_modes[k + 1];
    }
    let offsets = |modes: &[usize], weight: &dyn Fn(usize) -> usize| {
        let total: usize = modes.iter().product();
        let mut off = vec![0usize; total];
        for (idx, o) in off.iter_mut().enumerate() {
            let mut rest = idx;
            for k in (0..n).rev() {
                *o += (rest % modes[k]) * weight(k);
                rest /= modes[k];
            }
        }
        off
    };
    let row_off = offsets(out_modes, &|k| stride[k]);
    let col_off = offsets(in_modes, &|k| out_modes[k] * stride[k]);
    (row_off, col_off)
}

impl Mpo {
    /// TT-SVD of a dense matrix `W` (`prod out_modes` rows, `prod in_modes` columns) with the
    /// pair `(in_k, out_k)` on site `k`.
    ///
    /// The sweep runs right to left (the last bond first), as [`Mps::truncate`] does: a
    /// capped `params` gives the same MPO as the exact decomposition followed by
    /// `truncate(params)` (up to rounding and gauge), so `mpo compress --max-bond`, Python's
    /// `MPO.from_dense`, `net compress` and the uniform baseline of `--auto` agree. A truncated
    /// result is right-canonical with the center on site 0; the exact one (no cap, no cutoff)
    /// is left-canonical with the center on the last site, where a later truncation starts
    /// without a QR sweep. The report holds one
    /// [`Truncation`](crate::Truncation) per bond (in bond order) and a
    /// [`BondClamp`](crate::BondClamp) wherever a capped `max_bond` exceeded the bond's rank cap.
    ///
    /// # Errors
    /// Empty or zero modes, different numbers of in and out modes, modes that do not multiply to
    /// the matrix size, a non-finite entry, invalid `params`.
    ///
    /// # Complexity
    /// The first SVD (of the last site) dominates: O((i_{n-1} o_{n-1})^2 rows cols).
    ///
    /// # Example
    /// ```
    /// use tnml_core::{faer::Mat, Mpo, TruncParams};
    /// // A 64x64 matrix as (4,4,4) -> (4,4,4), compressed to bond dimension 4.
    /// let w = Mat::from_fn(64, 64, |i, j| ((i * 31 + j * 17) % 13) as f64 - 6.0);
    /// let (mpo, report) = Mpo::from_dense(w.as_ref(), &[4, 4, 4], &[4, 4, 4], &TruncParams::max_bond(4))?;
    /// assert_eq!(mpo.bond_dims(), vec![4, 4]);
    /// assert_eq!(mpo.num_params(), 16 * 4 + 4 * 16 * 4 + 4 * 16);
    /// println!("rho = {:.4}, discarded weight {:.2e}", mpo.compression().ratio(), report.total_discarded_weight());
    ///
    /// // Bad input names the numbers.
    /// let err = Mpo::from_dense(w.as_ref(), &[4, 4, 5], &[4, 4, 4], &TruncParams::exact()).unwrap_err();
    /// assert_eq!(err.to_string(), "in_modes multiply to 80, matrix has 64 columns");
    /// # Ok::<(), tnml_core::CoreError>(())
    /// ```
    pub fn from_dense(
        w: MatRef<'_, f64>,
        in_modes: &[usize],
        out_modes: &[usize],
        params: &TruncParams,
    ) -> Result<(Self, TruncReport)> {
        params.validate()?;
        check_layer_modes(in_modes, out_modes, w.nrows(), w.ncols())?;
        check_matrix("matrix", w)?;
        // entries of 1e-200 or 1e200 would under- or overflow the squares inside the SVDs:
        // decompose W / 2^e (e from the largest entry) and put 2^e back on the center (the
        // truncation is relative, so the result is the same); ordinary weights are untouched
        let mut peak = 0.0f64;
        for j in 0..w.ncols() {
            for i in 0..w.nrows() {
                peak = peak.max(w[(i, j)].abs());
            }
        }
        let e = if peak > 0.0 && !(1e-100..=1e100).contains(&peak) {
            peak.log2().round() as i32
        } else {
            0
        };
        let inv = 2f64.powi(-e.clamp(-1000, 1000));
        let inv2 = 2f64.powi(-e - (-e).clamp(-1000, 1000));
        let (row_off, col_off) = grouped_offsets(in_modes, out_modes);
        let mut grouped = vec![0.0; w.nrows() * w.ncols()];
        for (j, &co) in col_off.iter().enumerate() {
            for (i, &ro) in row_off.iter().enumerate() {
                grouped[ro + co] = w[(i, j)] * inv * inv2;
            }
        }
        let dims: Vec<usize> = in_modes.iter().zip(out_modes).map(|(i, o)| i * o).collect();
        // exact: left to right, so the result is left-canonical around the last site and a
        // later `truncate` (which sweeps right to left from there) needs no QR sweep first;
        // truncating: right to left, as `truncate` would
        let truncating = params.is_capped() || params.cutoff > 0.0;
        let (sites, report, center) = if truncating {
            let (sites, report) = tt_svd_right_to_left(grouped, &dims, params)?;
            (sites, report, 0)
        } else {
            let (sites, report) = tt_svd(grouped, &dims, params)?;
            (sites, report, dims.len() - 1)
        };
        let mut state = Mps {
            sites,
            center: Some(center),
        };
        state.restore_pow2(e);
        Ok((
            Self {
                in_modes: in_modes.to_vec(),
                out_modes: out_modes.to_vec(),
                state,
            },
            report,
        ))
    }

    /// Builds an MPO from its cores, each `(shape [left, in, out, right], row-major data)`.
    ///
    /// # Errors
    /// No cores, a zero dimension, data of the wrong length, mismatched bonds, a non-finite entry.
    pub fn from_cores(cores: Vec<([usize; 4], Vec<f64>)>) -> Result<Self> {
        let in_modes = cores.iter().map(|(s, _)| s[1]).collect();
        let out_modes = cores.iter().map(|(s, _)| s[2]).collect();
        let sites = cores
            .into_iter()
            .map(|([l, i, o, r], data)| SiteTensor::new(l, i.saturating_mul(o), r, data))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            in_modes,
            out_modes,
            state: Mps::from_sites(sites)?,
        })
    }

    /// The identity operator on `prod modes` dimensions (bond dimension 1).
    ///
    /// # Errors
    /// Empty or zero modes.
    pub fn identity(modes: &[usize]) -> Result<Self> {
        check_modes("modes", modes)?;
        let cores = modes
            .iter()
            .map(|&d| {
                (
                    [1, d, d, 1],
                    (0..d * d)
                        .map(|x| if x / d == x % d { 1.0 } else { 0.0 })
                        .collect(),
                )
            })
            .collect();
        Self::from_cores(cores)
    }

    /// Input modes `i_k`.
    pub fn in_modes(&self) -> &[usize] {
        &self.in_modes
    }
    /// Output modes `o_k`.
    pub fn out_modes(&self) -> &[usize] {
        &self.out_modes
    }
    /// Number of cores.
    pub fn len(&self) -> usize {
        self.state.len()
    }
    /// Always false: an MPO has at least one core.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }
    /// Core `k` as `(shape [left, in, out, right], row-major data)`.
    ///
    /// # Errors
    /// [`CoreError::SiteOutOfRange`].
    pub fn core(&self, k: usize) -> Result<([usize; 4], &[f64])> {
        let s = self.state.sites.get(k).ok_or(CoreError::SiteOutOfRange {
            site: k,
            len: self.len(),
        })?;
        Ok((
            [s.left(), self.in_modes[k], self.out_modes[k], s.right()],
            s.data(),
        ))
    }
    /// The MPO as a state over the grouped pairs `(in_k, out_k)`.
    pub fn as_mps(&self) -> &Mps {
        &self.state
    }
    /// Bond dimensions, entry `b - 1` for bond `b`.
    pub fn bond_dims(&self) -> Vec<usize> {
        self.state.bond_dims()
    }
    /// Rank cap of each bond, `min(prod_{k<b} i_k o_k, prod_{k>=b} i_k o_k)`.
    pub fn rank_caps(&self) -> Vec<usize> {
        rank_caps(&self.state.phys_dims())
    }
    /// Parameters of the cores, `sum_k D_{k-1} i_k o_k D_k`.
    pub fn num_params(&self) -> usize {
        self.state.num_params()
    }
    /// `(rows, cols)` of the dense matrix.
    pub fn dense_shape(&self) -> (usize, usize) {
        (
            saturating_product(&self.out_modes),
            saturating_product(&self.in_modes),
        )
    }
    /// MPO parameters against `rows * cols`.
    pub fn compression(&self) -> Compression {
        let (r, c) = self.dense_shape();
        Compression {
            mpo_params: self.num_params(),
            dense_params: r.saturating_mul(c),
        }
    }
    /// Frobenius norm.
    pub fn norm(&self) -> f64 {
        self.state.norm()
    }
    /// Frobenius inner product `tr(A^T B)`.
    ///
    /// # Errors
    /// Different modes.
    pub fn inner(&self, other: &Mpo) -> Result<f64> {
        if self.in_modes != other.in_modes || self.out_modes != other.out_modes {
            return Err(CoreError::ShapeMismatch {
                what: "modes of the two MPOs".into(),
                expected: format!("{:?} -> {:?}", self.in_modes, self.out_modes),
                got: format!("{:?} -> {:?}", other.in_modes, other.out_modes),
            });
        }
        self.state.inner(&other.state)
    }

    /// The dense matrix, `prod out_modes` rows by `prod in_modes` columns.
    ///
    /// # Errors
    /// [`CoreError::TooLarge`] above 2^27 entries.
    pub fn to_dense(&self) -> Result<Mat<f64>> {
        let (rows, cols) = self.dense_shape();
        let entries = rows.saturating_mul(cols);
        if entries > DENSE_LIMIT {
            return Err(CoreError::TooLarge {
                what: "dense matrix",
                entries,
                limit: DENSE_LIMIT,
            });
        }
        let grouped = self.state.to_dense()?;
        let (row_off, col_off) = grouped_offsets(&self.in_modes, &self.out_modes);
        Ok(Mat::from_fn(rows, cols, |i, j| grouped[row_off[i] + col_off[j]]))
    }

    /// Orthogonality center, if in canonical form.
    pub fn ortho_center(&self) -> Option<usize> {
        self.state.ortho_center()
    }
    /// Mixed canonical form around `center` (see [`Mps::canonicalize`]).
    ///
    /// # Errors
    /// [`CoreError::SiteOutOfRange`].
    pub fn canonicalize(&mut self, center: usize) -> Result<()> {
        self.state.canonicalize(center)
    }
    /// Truncates every bond (see [`Mps::truncate`]).
    ///
    /// # Errors
    /// Invalid `params`.
    pub fn truncate(&mut self, params: &TruncParams) -> Result<TruncReport> {
        self.state.truncate(params)
    }
    /// Truncates each bond to its own cap (see [`Mps::truncate_to_bonds`]).
    ///
    /// # Errors
    /// A list of the wrong length, a cap of 0.
    pub fn truncate_to_bonds(&mut self, max_bonds: &[usize]) -> Result<TruncReport> {
        self.state.truncate_to_bonds(max_bonds)
    }
    /// Schmidt values of `W / ||W||` at `bond`.
    ///
    /// # Errors
    /// Bond out of range; zero operator.
    pub fn schmidt_values(&self, bond: usize) -> Result<Vec<f64>> {
        self.state.schmidt_values(bond)
    }
    /// Entanglement entropy (natural log) at `bond`.
    ///
    /// # Errors
    /// Bond out of range; zero operator.
    pub fn entanglement_entropy(&self, bond: usize) -> Result<f64> {
        self.state.entanglement_entropy(bond)
    }
    /// Entanglement of every bond.
    ///
    /// # Errors
    /// Zero operator.
    pub fn entanglement_profile(&self) -> Result<EntanglementProfile> {
        self.state.entanglement_profile()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_dense_round_trips_at_full_rank() {
        let w = Mat::from_fn(12, 6, |i, j| ((i * 7 + j * 3 + i * j * j) as f64).sin());
        let (mpo, report) = Mpo::from_dense(w.as_ref(), &[2, 3], &[3, 4], &TruncParams::exact()).unwrap();
        let back = mpo.to_dense().unwrap();
        assert!((&back - &w).norm_max() < 1e-13);
        assert_eq!(mpo.core(0).unwrap().0, [1, 2, 3, 6]);
        assert_eq!(mpo.core(1).unwrap().0, [6, 3, 4, 1]);
        assert_eq!(mpo.ortho_center(), Some(1));
        assert!(report.total_discarded_weight() < 1e-15);
    }

    /// One truncation convention: a capped decomposition is the exact one truncated by
    /// `Mps::truncate` (right to left), so the bond cap of `--max-bond` and of `--auto`'s
    /// uniform baseline give the same MPO and the same error.
    #[test]
    fn capped_from_dense_is_the_exact_mpo_truncated() {
        let w = Mat::from_fn(64, 48, |i, j| {
            ((i * 7 + j * 3 + i * j * j) as f64).sin() + 0.1 * (i as f64)
        });
        let (i, o) = ([4, 3, 4], [4, 4, 4]);
        let (exact, _) = Mpo::from_dense(w.as_ref(), &i, &o, &TruncParams::exact()).unwrap();
        for d in [2, 3, 5, 9] {
            let (capped, report) = Mpo::from_dense(w.as_ref(), &i, &o, &TruncParams::max_bond(d)).unwrap();
            let mut state = exact.as_mps().clone();
            let swept = state.truncate(&TruncParams::max_bond(d)).unwrap();
            let a = capped.to_dense().unwrap();
            let b = Mpo::from_cores(
                (0..state.len())
                    .map(|k| {
                        let s = &state.sites()[k];
                        ([s.left(), i[k], o[k], s.right()], s.data().to_vec())
                    })
                    .collect(),
            )
            .unwrap()
            .to_dense()
            .unwrap();
            assert!((&a - &b).norm_max() < 1e-10, "D = {d}");
            assert_eq!(capped.bond_dims(), state.bond_dims(), "D = {d}");
            let rel = (&a - &w).norm_l2() / w.norm_l2();
            assert!(
                (rel * rel - report.total_discarded_weight()).abs() < 1e-10,
                "D = {d}"
            );
            assert!((report.total_discarded_weight() - swept.total_discarded_weight()).abs() < 1e-12);
            // bonds are reported in bond order, numbered as the MPO's
            let bonds: Vec<usize> = report.bonds.iter().map(|t| t.bond).collect();
            assert_eq!(bonds, vec![1, 2]);
            assert_eq!(swept.bonds.iter().map(|t| t.bond).collect::<Vec<_>>(), vec![1, 2]);
        }
    }

    /// Scale does not change the decomposition: entries of 1e200 or 1e-200 (whose squares
    /// leave the f64 range) give the same bonds and entanglement as entries of order 1.
    #[test]
    fn from_dense_is_scale_free() {
        let w = Mat::from_fn(12, 6, |i, j| ((i * 7 + j * 3 + i * j * j) as f64).sin());
        let (one, _) = Mpo::from_dense(w.as_ref(), &[2, 3], &[3, 4], &TruncParams::exact()).unwrap();
        let s1 = one.entanglement_profile().unwrap().entropies();
        for scale in [1e200, 1e-200, 1e-310] {
            let ws = Mat::from_fn(12, 6, |i, j| w[(i, j)] * scale);
            let (m, _) = Mpo::from_dense(ws.as_ref(), &[2, 3], &[3, 4], &TruncParams::exact()).unwrap();
            assert_eq!(m.bond_dims(), one.bond_dims(), "scale {scale:e}");
            let s = m.entanglement_profile().unwrap().entropies();
            assert!(
                s.iter().zip(&s1).all(|(a, b)| (a - b).abs() < 1e-9),
                "scale {scale:e}: {s:?} vs {s1:?}"
            );
            let back = m.to_dense().unwrap();
            let rel = (&back - &ws).norm_l2() / ws.norm_l2();
            assert!(rel < 1e-12, "scale {scale:e}: relative error {rel:e}");
        }
    }

    #[test]
    fn identity_is_the_identity_matrix() {
        let id = Mpo::identity(&[2, 3]).unwrap();
        let d = id.to_dense().unwrap();
        assert!((&d - Mat::<f64>::identity(6, 6)).norm_max() == 0.0);
        assert!(id.entanglement_profile().unwrap().max_entropy().abs() < 1e-14);
    }

    #[test]
    fn bad_modes_name_their_numbers() {
        let w = Mat::<f64>::zeros(256, 784);
        let e = |i: &[usize], o: &[usize]| {
            Mpo::from_dense(w.as_ref(), i, o, &TruncParams::exact())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(&[4, 7, 7, 4], &[4, 4, 4, 2]),
            "out_modes multiply to 128, matrix has 256 rows"
        );
        assert_eq!(
            e(&[4, 7, 7, 4], &[4, 4, 16]),
            "in_modes has 4 entries but out_modes has 3: an MPO needs one (in, out) pair per site"
        );
        assert_eq!(
            e(&[4, 0, 7, 4], &[4, 4, 4, 4]),
            "in_modes[1] is 0: every mode must be at least 1"
        );
        assert_eq!(e(&[], &[]), "in_modes is empty: at least one mode is needed");
        let mut bad = Mat::<f64>::zeros(4, 4);
        bad[(2, 3)] = f64::INFINITY;
        let err = Mpo::from_dense(bad.as_ref(), &[2, 2], &[2, 2], &TruncParams::exact()).unwrap_err();
        assert_eq!(err.to_string(), "matrix has a non-finite entry inf at (2, 3)");
    }

    #[test]
    fn gao_fc2_compression_ratios() {
        // FC2 784-256-10 with M^{4,4,4,4}_{4,7,7,4}(D) and M^{1,1,10,1}_{4,4,4,4}(4).
        let params = |modes_in: &[usize], modes_out: &[usize], d: usize| {
            let dims: Vec<usize> = modes_in.iter().zip(modes_out).map(|(a, b)| a * b).collect();
            let (bonds, _) = crate::clamp_bond_dims(&vec![d; dims.len() - 1], &dims).unwrap();
            let mut b = vec![1];
            b.extend(bonds);
            b.push(1);
            (0..dims.len()).map(|k| b[k] * dims[k] * b[k + 1]).sum::<usize>()
        };
        let second = params(&[4, 4, 4, 4], &[1, 1, 10, 1], 4);
        let c2 = Compression {
            mpo_params: params(&[4, 7, 7, 4], &[4, 4, 4, 4], 2) + second,
            dense_params: 784 * 256 + 256 * 10,
        };
        assert_eq!(c2.mpo_params, 1024);
        assert_eq!(c2.dense_params, 203_264);
        let c16 = Compression {
            mpo_params: params(&[4, 7, 7, 4], &[4, 4, 4, 4], 16) + second,
            ..c2
        };
        assert_eq!(c16.mpo_params, 15_584);
        assert!((c16.ratio() - 0.0767).abs() < 1e-4);
    }
}
