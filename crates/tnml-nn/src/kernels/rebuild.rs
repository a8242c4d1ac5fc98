//! The reconstruct plan of an MPO layer ([`crate::Plan::Dense`]) as one fused operation: `W^T`
//! from the two merged halves of the chain in one GEMM, the batch product, and the backward into
//! the halves, with faer GEMMs over all threads.
//!
//! The halves come as the cores merge into them: `A' = [(i_<, j_<), r]` and
//! `M' = [r, (i_>=, j_>=)]` (the same tensors as `A`, `M` of [`super::split`], in another order), and
//! `W^T[(i_<, i_>=), (j_<, j_>=)] = sum_r A'[i_<, j_<, r] M'[r, i_>=, j_>=]`:
//!
//! * `P = A' M'` (`I_< J_< r I_>= J_>=` multiply-adds, independent of the batch), permuted into
//!   `W^T`;
//! * `y = x W^T` (`B N_in N_out`);
//! * backward: `dW^T = x^T dy`, `dx = dy W`, and `dA' = dP M'^T`, `dM' = A'^T dP` for
//!   `dP` = `dW^T` permuted back.
//!
//! Against the split plan this costs `2 N_in N_out` per sample (forward and `dW`) instead of
//! `3 r (N_in J_>= + I_< N_out)`, in two large GEMMs: it pays when `W` is small (FC2's
//! 784 x 256) and the batch large enough to amortize the rebuild.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatRef, Par};
use rayon::prelude::*;
use tnml_core::faer;

use super::scratch::with_scratch;
use super::split::SplitShape;

fn view(a: &[f32], m: usize, n: usize) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(a, m, n)
}

/// `out = a b` (row-major `out`), the rows of `a` split over rayon's threads, each block one
/// sequential faer GEMM.
fn gemm(out: &mut [f32], a: MatRef<'_, f32>, b: MatRef<'_, f32>) {
    let (m, n) = (a.nrows(), b.ncols());
    if m == 0 || n == 0 {
        return;
    }
    let rows = m.div_ceil(rayon::current_num_threads()).max(1);
    out.par_chunks_mut(rows * n).enumerate().for_each(|(i, block)| {
        let r = block.len() / n;
        let dst = faer::MatMut::from_row_major_slice_mut(block, r, n);
        matmul(dst, Accum::Replace, a.subrows(i * rows, r), b, 1.0, Par::Seq);
    });
}

/// Writes the row-major `[d0, d1, d2, d3]` array `src` into `out` as `[d0, d2, d1, d3]` (swaps
/// the middle axes).
fn swap_middle_into(src: &[f32], [d0, d1, d2, d3]: [usize; 4], out: &mut [f32]) {
    for a in 0..d0 {
        for b in 0..d1 {
            for c in 0..d2 {
                let from = ((a * d1 + b) * d2 + c) * d3;
                let to = ((a * d2 + c) * d1 + b) * d3;
                out[to..to + d3].copy_from_slice(&src[from..from + d3]);
            }
        }
    }
}

#[cfg(test)]
fn swap_middle(src: &[f32], dims: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    swap_middle_into(src, dims, &mut out);
    out
}

/// `W^T` (`[N_in, N_out]`, row-major) from `A'` and `M'`.
pub fn weight_t(s: &SplitShape, a2: &[f32], m2: &[f32]) -> Vec<f32> {
    let (lo, hi) = (s.i_lo * s.j_lo, s.i_hi * s.j_hi);
    let mut w_t = vec![0f32; lo * hi];
    with_scratch(lo * hi, |p| {
        gemm(p, view(a2, lo, s.r), view(m2, s.r, hi));
        // P [i_<, j_<, i_>=, j_>=] -> W^T [i_<, i_>=, j_<, j_>=]
        swap_middle_into(p, [s.i_lo, s.j_lo, s.i_hi, s.j_hi], &mut w_t);
    });
    w_t
}

/// `y = x W^T` (`[B, N_out]`) and `W^T` (kept for the backward).
pub fn forward(s: &SplitShape, x: &[f32], a: &[f32], m: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (n_in, n_out) = (s.i_lo * s.i_hi, s.j_lo * s.j_hi);
    let w_t = weight_t(s, a, m);
    let mut y = vec![0f32; s.batch * n_out];
    if s.batch > 0 {
        gemm(&mut y, view(x, s.batch, n_in), view(&w_t, n_in, n_out));
    }
    (y, w_t)
}

/// `(dx, dA', dM')` for the output gradient `dy`; `dx` only when `need_dx`.
pub fn backward(
    s: &SplitShape,
    x: &[f32],
    a: &[f32],
    m: &[f32],
    w_t: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (n_in, n_out) = (s.i_lo * s.i_hi, s.j_lo * s.j_hi);
    let dx = need_dx.then(|| {
        let mut dx = vec![0f32; s.batch * n_in];
        if s.batch > 0 {
            gemm(
                &mut dx,
                view(dy, s.batch, n_out),
                view(w_t, n_in, n_out).transpose(),
            );
        }
        dx
    });
    let (lo, hi) = (s.i_lo * s.j_lo, s.i_hi * s.j_hi);
    let mut da = vec![0f32; lo * s.r];
    let mut dm = vec![0f32; s.r * hi];
    with_scratch(n_in * n_out, |dw_t| {
        with_scratch(n_in * n_out, |dp| {
            // dW^T = x^T dy, then dP [i_<, j_<, i_>=, j_>=]
            if s.batch > 0 {
                gemm(dw_t, view(x, s.batch, n_in).transpose(), view(dy, s.batch, n_out));
            } else {
                dw_t.fill(0.0);
            }
            swap_middle_into(dw_t, [s.i_lo, s.i_hi, s.j_lo, s.j_hi], dp);
            gemm(&mut da, view(dp, lo, hi), view(m, s.r, hi).transpose());
            gemm(&mut dm, view(a, lo, s.r).transpose(), view(dp, lo, hi));
        })
    });
    (dx, da, dm)
}

#[cfg(test)]
mod tests {
    use super::super::split;
    use super::*;
    use crate::kernels::scratch::test_values as values;

    /// The fused rebuild computes the same function and gradients as the split contraction
    /// (itself checked against the definition in `split`).
    #[test]
    fn agrees_with_the_split_contraction() {
        for s in [
            SplitShape::from_dims([5, 3, 4, 2, 2, 3]),
            SplitShape::from_dims([1, 2, 3, 3, 4, 1]),
            SplitShape::from_dims([7, 28, 28, 16, 16, 16]),
        ] {
            let x = values(s.batch * s.i_lo * s.i_hi, 1);
            let a = values(s.i_lo * s.r * s.j_lo, 2);
            let m = values(s.i_hi * s.r * s.j_hi, 3);
            let dy = values(s.batch * s.j_lo * s.j_hi, 4);
            let (y_split, t) = split::forward(&s, &x, &a, &m);
            // A [i_<, r, j_<] -> A' [i_<, j_<, r]; M [i_>=, r, j_>=] -> M' [r, i_>=, j_>=]
            let a2 = swap_middle(&a, [s.i_lo, s.r, s.j_lo, 1]);
            let m2 = swap_middle(&m, [1, s.i_hi, s.r, s.j_hi]);
            let (y, w_t) = forward(&s, &x, &a2, &m2);
            let close = |what: &str, u: &[f32], v: &[f32]| {
                let scale = v.iter().fold(1f32, |acc, x| acc.max(x.abs()));
                for (p, q) in u.iter().zip(v) {
                    assert!((p - q).abs() < 1e-5 * scale, "{s:?} {what}: {p} vs {q}");
                }
            };
            close("y", &y, &y_split);
            let (dx_s, da_s, dm_s) = split::backward(&s, &x, &a, &m, &t, &dy, true);
            let (dx, da2, dm2) = backward(&s, &x, &a2, &m2, &w_t, &dy, true);
            close("dx", &dx.unwrap(), &dx_s.unwrap());
            close("dA", &swap_middle(&da2, [s.i_lo, s.j_lo, s.r, 1]), &da_s);
            close("dM", &swap_middle(&dm2, [1, s.r, s.i_hi, s.j_hi]), &dm_s);
        }
    }
}
