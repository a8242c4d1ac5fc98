//! Dense building blocks on faer: truncated SVD and thin QR / LQ of row-major matrices.
//!
//! Site tensors are stored row-major, so `[left, phys, right]` reads as a `(left*phys, right)`
//! or a `(left, phys*right)` matrix without copying. faer is column-major; the helpers here do
//! the one copy at each boundary. faer is built without its `rayon` feature, so every call runs
//! sequentially: on 2 cores its parallel QR was 3–6x slower for sweep-sized matrices, and callers
//! parallelize at a higher level.

use faer::{Mat, MatRef};

use crate::faer;

use crate::error::{CoreError, Result};
use crate::trunc::{TruncParams, Truncation};

/// A truncated SVD `A ~ U diag(s) Vt` and what was dropped.
#[derive(Debug, Clone)]
pub struct TruncatedSvd {
    /// Left singular vectors, `rows x kept`, orthonormal columns.
    pub u: Mat<f64>,
    /// Kept singular values, nonnegative and nonincreasing.
    pub s: Vec<f64>,
    /// Right singular vectors transposed, `kept x cols`, orthonormal rows.
    pub vt: Mat<f64>,
    /// What was dropped (`bond` is 0; callers that split at a bond set it).
    pub truncation: Truncation,
}

impl TruncatedSvd {
    /// `U` as row-major data (`rows x kept`).
    pub fn u_row_major(&self) -> Vec<f64> {
        to_row_major(self.u.as_ref())
    }

    /// `Vt` as row-major data (`kept x cols`).
    pub fn vt_row_major(&self) -> Vec<f64> {
        to_row_major(self.vt.as_ref())
    }
}

/// Truncated thin SVD of `a` under `params`.
///
/// # Errors
/// Invalid `params`, a non-finite entry, or an SVD that did not converge.
///
/// # Complexity
/// O(m n min(m, n)) for an `m x n` matrix.
///
/// # Example
/// ```
/// use tnml_core::{faer::Mat, truncated_svd, TruncParams};
/// let a = Mat::from_fn(4, 3, |i, j| (i + j) as f64); // rank 2
/// let svd = truncated_svd(a.as_ref(), &TruncParams::cutoff(1e-20)).unwrap();
/// assert_eq!(svd.s.len(), 2);
/// assert!(svd.truncation.discarded_weight < 1e-20);
/// ```
pub fn truncated_svd(a: MatRef<'_, f64>, params: &TruncParams) -> Result<TruncatedSvd> {
    params.validate()?;
    check_matrix("matrix", a)?;
    svd_unchecked(a, params)
}

/// [`truncated_svd`] without the input checks, for internal callers that validated already.
pub(crate) fn svd_unchecked(a: MatRef<'_, f64>, params: &TruncParams) -> Result<TruncatedSvd> {
    let (m, n) = (a.nrows(), a.ncols());
    let r = m.min(n);
    let (u_full, s_all, v_full) = thin_svd_checked(a)?;
    let svd = (u_full, v_full);
    let zero_tol = s_all.first().copied().unwrap_or(0.0) * f64::EPSILON * m.max(n) as f64;
    let (k, discarded, total) = params.choose_rank(&s_all, zero_tol);
    let mut u = svd.0.get(.., ..k).to_owned();
    let mut vt = svd.1.get(.., ..k).transpose().to_owned();
    fix_signs(&mut u, &mut vt);
    Ok(TruncatedSvd {
        u,
        s: s_all[..k].to_vec(),
        vt,
        truncation: Truncation {
            bond: 0,
            kept: k,
            full_rank: r,
            discarded_weight: if total > 0.0 { discarded / total } else { 0.0 },
            discarded_norm2: discarded,
        },
    })
}

/// The sign convention of [`truncated_svd`]: each column of `U` has its largest-magnitude entry
/// positive (the first such entry on a tie), the row of `Vt` flipped with it. Singular vectors
/// are unique only up to sign; with the convention, two SVDs of matrices that differ by rounding
/// (another thread count, another order of a sum over MPI ranks) give factors that differ by
/// rounding, not by a sign, unless singular values are degenerate. Cost O((m + n) k).
fn fix_signs(u: &mut Mat<f64>, vt: &mut Mat<f64>) {
    for j in 0..u.ncols() {
        let mut best = 0.0f64;
        for i in 0..u.nrows() {
            if u[(i, j)].abs() > best.abs() {
                best = u[(i, j)];
            }
        }
        if best < 0.0 {
            for i in 0..u.nrows() {
                u[(i, j)] = -u[(i, j)];
            }
            for c in 0..vt.ncols() {
                vt[(j, c)] = -vt[(j, c)];
            }
        }
    }
}

/// A thin SVD as `(U, singular values, V)`.
pub(crate) type ThinSvd = (Mat<f64>, Vec<f64>, Mat<f64>);

/// Thin SVD `(U, s, V)` whose factors are guaranteed finite.
///
/// faer 0.24's divide-and-conquer bidiagonal SVD (used from 128 columns up) can return NaN
/// singular vectors with finite singular values for some rank-deficient inputs (a 128x128
/// reproducer is in `tests/data`). When that happens the SVD is redone with the
/// QR-iteration bidiagonal solver, which is slower but robust.
pub(crate) fn thin_svd_checked(a: MatRef<'_, f64>) -> Result<ThinSvd> {
    let (m, n) = (a.nrows(), a.ncols());
    let err = || CoreError::SvdNoConvergence { rows: m, cols: n };
    let svd = a.thin_svd().map_err(|_| err())?;
    let finite = |x: MatRef<'_, f64>| x.col_iter().all(|c| c.iter().all(|v| v.is_finite()));
    let s: Vec<f64> = (0..m.min(n)).map(|i| svd.S()[i]).collect();
    if finite(svd.U()) && finite(svd.V()) && s.iter().all(|v| v.is_finite()) {
        return Ok((svd.U().to_owned(), s, svd.V().to_owned()));
    }
    let (u, s, v) = svd_without_recursion(a).map_err(|_| err())?;
    if finite(u.as_ref()) && finite(v.as_ref()) && s.iter().all(|x| x.is_finite()) {
        Ok((u, s, v))
    } else {
        Err(err())
    }
}

/// Thin SVD with faer's non-recursive (QR-iteration) bidiagonal solver, sequential.
pub(crate) fn svd_without_recursion(
    a: MatRef<'_, f64>,
) -> std::result::Result<ThinSvd, faer::linalg::svd::SvdError> {
    use faer::diag::Diag;
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::svd::{svd, svd_scratch, ComputeSvdVectors, SvdParams};
    use faer::{Auto, Par};
    let (m, n) = a.shape();
    let k = m.min(n);
    let mut params: SvdParams = <SvdParams as Auto<f64>>::auto();
    params.recursion_threshold = usize::MAX;
    let mut s = Diag::<f64>::zeros(k);
    let mut u = Mat::<f64>::zeros(m, k);
    let mut v = Mat::<f64>::zeros(n, k);
    let thin = ComputeSvdVectors::Thin;
    let mut buf = MemBuffer::new(svd_scratch::<f64>(m, n, thin, thin, Par::Seq, params.into()));
    svd(
        a,
        s.as_mut(),
        Some(u.as_mut()),
        Some(v.as_mut()),
        Par::Seq,
        MemStack::new(&mut buf),
        params.into(),
    )?;
    Ok((u, (0..k).map(|i| s[i]).collect(), v))
}

/// Singular values of `a`, nonincreasing.
pub(crate) fn singular_values(a: MatRef<'_, f64>) -> Result<Vec<f64>> {
    a.singular_values().map_err(|_| CoreError::SvdNoConvergence {
        rows: a.nrows(),
        cols: a.ncols(),
    })
}

/// Thin QR `A = Q R` with `Q` of shape `m x min(m,n)` (orthonormal columns).
pub(crate) fn thin_qr(a: MatRef<'_, f64>) -> (Mat<f64>, Mat<f64>) {
    let qr = a.qr();
    (qr.compute_thin_Q(), qr.thin_R().to_owned())
}

/// Thin LQ `A = L Q` with `Q` of shape `min(m,n) x n` (orthonormal rows), from the QR of `A^T`.
pub(crate) fn thin_lq(a: MatRef<'_, f64>) -> (Mat<f64>, Mat<f64>) {
    let (q, r) = thin_qr(a.transpose());
    (r.transpose().to_owned(), q.transpose().to_owned())
}

/// View of a row-major slice as a matrix.
pub(crate) fn view(data: &[f64], rows: usize, cols: usize) -> MatRef<'_, f64> {
    MatRef::from_row_major_slice(data, rows, cols)
}

/// Copies a matrix into a row-major vector.
pub(crate) fn to_row_major(a: MatRef<'_, f64>) -> Vec<f64> {
    let (m, n) = (a.nrows(), a.ncols());
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            out.push(a[(i, j)]);
        }
    }
    out
}

/// Row-major product `(m x k) * (k x n)`.
pub(crate) fn matmul(a: &[f64], m: usize, k: usize, b: &[f64], n: usize) -> Vec<f64> {
    let c = view(a, m, k) * view(b, k, n);
    to_row_major(c.as_ref())
}

/// Checks a matrix for non-finite entries, naming the first one found (row by row).
pub(crate) fn check_matrix(what: &'static str, a: MatRef<'_, f64>) -> Result<()> {
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            let value = a[(i, j)];
            if !value.is_finite() {
                return Err(CoreError::NonFinite {
                    what,
                    position: format!("({i}, {j})"),
                    value,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_vectors_follow_the_sign_convention_and_still_reconstruct() {
        let a = Mat::from_fn(6, 4, |i, j| {
            ((i * 7 + j * 3) % 5) as f64 - 2.0 + 0.1 * (i * j) as f64
        });
        for m in [a.clone(), -&a] {
            let svd = truncated_svd(m.as_ref(), &TruncParams::cutoff(1e-30)).unwrap();
            for j in 0..svd.u.ncols() {
                let col: Vec<f64> = (0..svd.u.nrows()).map(|i| svd.u[(i, j)]).collect();
                let max = col
                    .iter()
                    .copied()
                    .fold(0.0f64, |b, v| if v.abs() > b.abs() { v } else { b });
                assert!(max > 0.0, "column {j}: {col:?}");
            }
            let k = svd.s.len();
            for i in 0..6 {
                for c in 0..4 {
                    let r: f64 = (0..k).map(|j| svd.u[(i, j)] * svd.s[j] * svd.vt[(j, c)]).sum();
                    assert!((r - m[(i, c)]).abs() < 1e-12, "({i}, {c}): {r} vs {}", m[(i, c)]);
                }
            }
        }
    }
}
