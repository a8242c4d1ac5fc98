//! Batched products over samples, parallel over row blocks (rayon), each block one sequential
//! faer GEMM. Every per-sample contraction of the classifier is written as one of these, so the
//! hot loops run at GEMM speed instead of as per-sample loops of tiny products.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use tnml_core::faer;

/// `sum_i a_i b_i` in f32 with eight independent accumulators, so the compiler vectorizes it
/// (a single running sum is a serial dependency chain).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0f32; 8];
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `sum_i a_i^2` accumulated in f64 over four lanes.
#[inline]
fn norm2_f64(a: &[f32]) -> f64 {
    let ca = a.chunks_exact(4);
    let r = ca.remainder();
    let mut acc = [0f64; 4];
    for x in ca {
        for k in 0..4 {
            acc[k] += f64::from(x[k]) * f64::from(x[k]);
        }
    }
    acc.iter().sum::<f64>() + r.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()
}

/// Rows per parallel block.
fn block_rows(m: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    (m / (threads * 4)).clamp(64, 4096)
}

/// `C = A R` for row-major `A` (`m x k`) and any `k x n` view `R`, parallel over row blocks.
fn gemm_rows(a: &[f32], m: usize, k: usize, rhs: MatRef<'_, f32>) -> Vec<f32> {
    let n = rhs.ncols();
    let mut c = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return c;
    }
    let rows = block_rows(m);
    c.par_chunks_mut(rows * n)
        .zip(a.par_chunks(rows * k))
        .for_each(|(cc, aa)| {
            let mm = aa.len() / k.max(1);
            let dst = MatMut::from_row_major_slice_mut(cc, mm, n);
            matmul(
                dst,
                Accum::Replace,
                MatRef::from_row_major_slice(aa, mm, k),
                rhs,
                1.0f32,
                Par::Seq,
            );
        });
    c
}

/// `C = A B` for row-major `A` (`m x k`) and `B` (`k x n`); returns row-major `C` (`m x n`).
///
/// # Complexity
/// `2 m k n` flops, split over threads by rows of `A`.
pub fn gemm(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f32> {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * n);
    gemm_rows(a, m, k, MatRef::from_row_major_slice(b, k, n))
}

/// `C = A B^T` for row-major `A` (`m x k`) and `B` (`n x k`); returns row-major `C` (`m x n`).
pub fn gemm_bt(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f32> {
    gemm_rows(a, m, k, MatRef::from_row_major_slice(b, n, k).transpose())
}

/// `G = A^T Z` for row-major `A` (`m x k`) and `Z` (`m x n`): a sum over the `m` samples,
/// accumulated per block in f32 and added across blocks in f64. Returns row-major `k x n`.
pub fn gemm_at(a: &[f32], m: usize, k: usize, z: &[f32], n: usize) -> Vec<f32> {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(z.len(), m * n);
    if m == 0 {
        return vec![0f32; k * n];
    }
    let rows = block_rows(m);
    let partial: Vec<f64> = a
        .par_chunks(rows * k)
        .zip(z.par_chunks(rows * n))
        .map(|(aa, zz)| {
            let mm = aa.len() / k.max(1);
            let mut g = vec![0f32; k * n];
            let dst = MatMut::from_row_major_slice_mut(&mut g, k, n);
            let at = MatRef::from_row_major_slice(aa, mm, k).transpose();
            matmul(
                dst,
                Accum::Replace,
                at,
                MatRef::from_row_major_slice(zz, mm, n),
                1.0f32,
                Par::Seq,
            );
            g.into_iter().map(f64::from).collect::<Vec<f64>>()
        })
        .reduce(
            || vec![0f64; k * n],
            |mut x, y| {
                x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
                x
            },
        );
    partial.into_iter().map(|v| v as f32).collect()
}

/// Rows per block of the fused products: small enough that a block's `rows x (p q)`
/// intermediate stays in the core's cache.
fn fused_block_rows(width: usize) -> usize {
    (65_536 / width.max(1)).clamp(16, 1024)
}

/// `out[n, i] = sum_j (A B)[n, (i, j)] * c[n, j]` for row-major `A` (`m x k`), `B`
/// (`k x (p q)`) and `c` (`m x q`): a GEMM followed by a row-wise contraction, fused per block of
/// rows so the `m x (p q)` product never goes through main memory.
///
/// # Complexity
/// `2 m k p q + 2 m p q` flops.
pub fn gemm_contract_rows(
    a: &[f32],
    m: usize,
    k: usize,
    b: &[f32],
    p: usize,
    c: &[f32],
    q: usize,
) -> Vec<f32> {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * p * q);
    debug_assert_eq!(c.len(), m * q);
    let mut out = vec![0f32; m * p];
    if m == 0 || p == 0 {
        return out;
    }
    let rows = fused_block_rows(p * q);
    let bm = MatRef::from_row_major_slice(b, k, p * q);
    out.par_chunks_mut(rows * p)
        .zip(a.par_chunks(rows * k))
        .zip(c.par_chunks(rows * q))
        .for_each_init(Vec::new, |t, ((o, ab), cb)| {
            let mm = ab.len() / k.max(1);
            t.resize(mm * p * q, 0.0);
            matmul(
                MatMut::from_row_major_slice_mut(t, mm, p * q),
                Accum::Replace,
                MatRef::from_row_major_slice(ab, mm, k),
                bm,
                1.0f32,
                Par::Seq,
            );
            for ((orow, trow), crow) in o
                .chunks_exact_mut(p)
                .zip(t.chunks_exact(p * q))
                .zip(cb.chunks_exact(q))
            {
                for (oi, ti) in orow.iter_mut().zip(trow.chunks_exact(q)) {
                    *oi = dot_f32(ti, crow);
                }
            }
        });
    out
}

/// Rows per block of a sum over samples ([`gemm_at_outer`]): a constant, so that the blocks, and
/// with them the result, do not depend on the thread count, and a shard of the samples that
/// starts at a multiple of it (`crate::collective::shard_range`) has the blocks one process has.
pub const SUM_BLOCK_ROWS: usize = 1024;

/// `G = A^T (E (x)_row c)`, i.e. `G[i, (l, j)] = sum_n A[n, i] E[n, l] c[n, j]`, for row-major
/// `A` (`m x k`), `E` (`m x p`), `c` (`m x q`): the row-wise outer product is built per block of
/// rows in cache and fed straight into the GEMM. Accumulated per block of [`SUM_BLOCK_ROWS`] in
/// f32, across blocks in f64. Returns row-major `k x (p q)`.
///
/// # Complexity
/// `2 m k p q + m p q` flops.
pub fn gemm_at_outer(a: &[f32], m: usize, k: usize, e: &[f32], p: usize, c: &[f32], q: usize) -> Vec<f32> {
    gemm_at_outer_f64(a, m, k, e, p, c, q)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// [`gemm_at_outer`] before the final rounding to f32: the f64 sum of the f32 partials of the
/// blocks. Sums of a few dozen f32 values in f64 are exact, so the f64 sums of two shards of
/// blocks add up to one process's sum bit for bit, whatever the order.
pub fn gemm_at_outer_f64(
    a: &[f32],
    m: usize,
    k: usize,
    e: &[f32],
    p: usize,
    c: &[f32],
    q: usize,
) -> Vec<f64> {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(e.len(), m * p);
    debug_assert_eq!(c.len(), m * q);
    let width = p * q;
    if m == 0 {
        return vec![0f64; k * width];
    }
    // blocks of the sum, each accumulated into one f32 partial by consecutive GEMMs
    let outer_rows = SUM_BLOCK_ROWS;
    let rows = fused_block_rows(width);
    a.par_chunks(outer_rows * k)
        .zip(e.par_chunks(outer_rows * p))
        .zip(c.par_chunks(outer_rows * q))
        .map(|((ab, eb), cb)| {
            let mut g = vec![0f32; k * width];
            let mut z = Vec::new();
            for (i, ((aa, ee), cc)) in ab
                .chunks(rows * k)
                .zip(eb.chunks(rows * p))
                .zip(cb.chunks(rows * q))
                .enumerate()
            {
                let mm = aa.len() / k.max(1);
                z.resize(mm * width, 0.0);
                for ((zrow, erow), crow) in z
                    .chunks_exact_mut(width)
                    .zip(ee.chunks_exact(p))
                    .zip(cc.chunks_exact(q))
                {
                    for (zl, &el) in zrow.chunks_exact_mut(q).zip(erow) {
                        zl.iter_mut().zip(crow).for_each(|(z, &cj)| *z = el * cj);
                    }
                }
                matmul(
                    MatMut::from_row_major_slice_mut(&mut g, k, width),
                    if i == 0 { Accum::Replace } else { Accum::Add },
                    MatRef::from_row_major_slice(aa, mm, k).transpose(),
                    MatRef::from_row_major_slice(&z, mm, width),
                    1.0f32,
                    Par::Seq,
                );
            }
            g.into_iter().map(f64::from).collect::<Vec<f64>>()
        })
        .reduce(
            || vec![0f64; k * width],
            |mut x, y| {
                x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
                x
            },
        )
}

/// Row-wise outer products: `out[n, (i, j)] = a[n, i] * b[n, j]` for `a` (`m x p`), `b` (`m x q`).
pub fn row_outer(a: &[f32], p: usize, b: &[f32], q: usize) -> Vec<f32> {
    let m = a.len().checked_div(p).unwrap_or(0);
    let mut out = vec![0f32; m * p * q];
    out.par_chunks_mut(p * q)
        .zip(a.par_chunks(p))
        .zip(b.par_chunks(q))
        .for_each(|((o, ar), br)| {
            for (i, &x) in ar.iter().enumerate() {
                for (j, &y) in br.iter().enumerate() {
                    o[i * q + j] = x * y;
                }
            }
        });
    out
}

/// Row-wise contraction `out[n, i] = sum_j t[n, (i, j)] * b[n, j]` for `t` (`m x (p q)`).
pub fn row_contract_last(t: &[f32], p: usize, b: &[f32], q: usize) -> Vec<f32> {
    let m = b.len().checked_div(q).unwrap_or(0);
    let mut out = vec![0f32; m * p];
    out.par_chunks_mut(p)
        .zip(t.par_chunks(p * q))
        .zip(b.par_chunks(q))
        .for_each(|((o, tr), br)| {
            for (oi, ti) in o.iter_mut().zip(tr.chunks_exact(q)) {
                *oi = dot_f32(ti, br);
            }
        });
    out
}

/// Scales each row of `v` (`rows` of `width`) to unit Euclidean norm; returns `ln` of each old
/// norm (`-inf` for a zero row, which is left as is).
pub fn normalize_rows(v: &mut [f32], width: usize) -> Vec<f64> {
    v.par_chunks_mut(width)
        .map(|row| 0.5 * unit_row(row).ln())
        .collect()
}

/// [`normalize_rows`] without the logarithms, for callers that drop the scale.
pub fn normalize_rows_in_place(v: &mut [f32], width: usize) {
    v.par_chunks_mut(width.max(1)).for_each(|row| {
        unit_row(row);
    });
}

/// Scales `row` to unit norm (unless zero); returns the old squared norm.
fn unit_row(row: &mut [f32]) -> f64 {
    let n2 = norm2_f64(row);
    if n2 > 0.0 {
        let inv = (1.0 / n2.sqrt()) as f32;
        row.iter_mut().for_each(|x| *x *= inv);
    }
    n2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_match_naive_loops() {
        let (m, k, n) = (1000, 7, 5);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 19) as f32) - 9.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        let c = gemm(&a, m, k, &b, n);
        assert_eq!(c, naive(&a, m, k, &b, n));
        // A^T Z with Z = C
        let g = gemm_at(&a, m, k, &c, n);
        let mut at = vec![0f32; k * m];
        for i in 0..m {
            for l in 0..k {
                at[l * m + i] = a[i * k + l];
            }
        }
        let expect = naive(&at, k, m, &c, n);
        for (x, y) in g.iter().zip(&expect) {
            assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0));
        }
        // A B^T
        let mut bt = vec![0f32; n * k];
        for l in 0..k {
            for j in 0..n {
                bt[j * k + l] = b[l * n + j];
            }
        }
        assert_eq!(gemm_bt(&a, m, k, &bt, n), c);
    }

    #[test]
    fn fused_products_match_the_unfused_ones() {
        let (m, k, p, q) = (2500, 6, 3, 4);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 19) as f32) / 9.0 - 1.0).collect();
        let b: Vec<f32> = (0..k * p * q)
            .map(|i| ((i * 13 % 7) as f32) / 3.0 - 1.0)
            .collect();
        let c: Vec<f32> = (0..m * q).map(|i| ((i * 11 % 5) as f32) / 2.0 - 1.0).collect();
        let e: Vec<f32> = (0..m * p).map(|i| ((i * 7 % 3) as f32) - 1.0).collect();
        let want = row_contract_last(&gemm(&a, m, k, &b, p * q), p, &c, q);
        let got = gemm_contract_rows(&a, m, k, &b, p, &c, q);
        for (x, y) in got.iter().zip(&want) {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} vs {y}");
        }
        let want = gemm_at(&a, m, k, &row_outer(&e, p, &c, q), p * q);
        let got = gemm_at_outer(&a, m, k, &e, p, &c, q);
        for (x, y) in got.iter().zip(&want) {
            assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{x} vs {y}");
        }
    }

    #[test]
    fn row_helpers() {
        let o = row_outer(&[1.0, 2.0, 3.0, 4.0], 2, &[1.0, 10.0, 100.0, 1000.0], 2);
        assert_eq!(o, vec![1.0, 10.0, 2.0, 20.0, 300.0, 3000.0, 400.0, 4000.0]);
        let c = row_contract_last(&o, 2, &[1.0, 1.0, 0.0, 1.0], 2);
        assert_eq!(c, vec![11.0, 22.0, 3000.0, 4000.0]);
        let mut v = vec![3.0, 4.0, 0.0, 0.0];
        let mut w = v.clone();
        let logs = normalize_rows(&mut v, 2);
        assert_eq!(v, vec![0.6, 0.8, 0.0, 0.0]);
        normalize_rows_in_place(&mut w, 2);
        assert_eq!(w, v);
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..21).map(|i| 3.0 - i as f32).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot_f32(&a, &b) - want).abs() < 1e-4);
        assert!((logs[0] - 5f64.ln()).abs() < 1e-12 && logs[1] == f64::NEG_INFINITY);
    }
}
