//! Batched products over samples, parallel over row blocks (rayon), each block one sequential
//! faer GEMM. Every per-sample contraction of the classifier is written as one of these, so the
//! hot loops run at GEMM speed instead of as per-sample loops of tiny products.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use tnml_core::faer;

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
            for (i, oi) in o.iter_mut().enumerate() {
                *oi = tr[i * q..(i + 1) * q].iter().zip(br).map(|(x, y)| x * y).sum();
            }
        });
    out
}

/// Scales each row of `v` (`rows` of `width`) to unit Euclidean norm; returns `ln` of each old
/// norm (`-inf` for a zero row, which is left as is).
pub fn normalize_rows(v: &mut [f32], width: usize) -> Vec<f64> {
    v.par_chunks_mut(width)
        .map(|row| {
            let n2: f64 = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            if n2 > 0.0 {
                let inv = (1.0 / n2.sqrt()) as f32;
                row.iter_mut().for_each(|x| *x *= inv);
            }
            0.5 * n2.ln()
        })
        .collect()
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
    fn row_helpers() {
        let o = row_outer(&[1.0, 2.0, 3.0, 4.0], 2, &[1.0, 10.0, 100.0, 1000.0], 2);
        assert_eq!(o, vec![1.0, 10.0, 2.0, 20.0, 300.0, 3000.0, 400.0, 4000.0]);
        let c = row_contract_last(&o, 2, &[1.0, 1.0, 0.0, 1.0], 2);
        assert_eq!(c, vec![11.0, 22.0, 3000.0, 4000.0]);
        let mut v = vec![3.0, 4.0, 0.0, 0.0];
        let logs = normalize_rows(&mut v, 2);
        assert_eq!(v, vec![0.6, 0.8, 0.0, 0.0]);
        assert!((logs[0] - 5f64.ln()).abs() < 1e-12 && logs[1] == f64::NEG_INFINITY);
    }
}
