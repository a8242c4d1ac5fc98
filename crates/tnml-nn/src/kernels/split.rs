//! The split contraction of an MPO layer ([`crate::Plan::Split`]) as two GEMM stages with no
//! transposes, and its backward.
//!
//! With the cores before bond `m` merged into `A` (`[I_< r, J_<]`, row-major) and those after it
//! into `M` (`[I_>=, r J_>=]`), a sample `x_b` viewed as `[I_<, I_>=]` maps to
//!
//! * `T_b = x_b M` (`[I_<, r J_>=]`, read as `[I_< r, J_>=]`), one GEMM for a whole chunk of
//!   samples (`[c I_<, I_>=] x [I_>=, r J_>=]`);
//! * `Y_b = A^T T_b` (`[J_<, J_>=]`, which is `y_b` row-major).
//!
//! Backward, for `dY_b`: `dT_b = A dY_b`, `dA = sum_b T_b dY_b^T`, `dX = dT M^T` (per chunk),
//! `dM = sum_chunks X^T dT`. Multiply-adds per sample: `r (N_in J_>= + I_< N_out)` forward, twice
//! that backward (three times with `dX`). Chunks of samples run on rayon's threads, each GEMM a
//! sequential faer product, each thread summing its own `dA`, `dM`.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use tnml_core::faer;

/// Sizes of the split contraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitShape {
    /// Samples.
    pub batch: usize,
    /// `prod_{j<m} I_j`.
    pub i_lo: usize,
    /// `prod_{j>=m} I_j`.
    pub i_hi: usize,
    /// The bond dimension `r_m` at the split.
    pub r: usize,
    /// `prod_{j<m} J_j`.
    pub j_lo: usize,
    /// `prod_{j>=m} J_j`.
    pub j_hi: usize,
}

impl SplitShape {
    /// From `[B, I_<, I_>=, r, J_<, J_>=]`.
    pub const fn from_dims([batch, i_lo, i_hi, r, j_lo, j_hi]: [usize; 6]) -> Self {
        Self {
            batch,
            i_lo,
            i_hi,
            r,
            j_lo,
            j_hi,
        }
    }

    fn n_in(&self) -> usize {
        self.i_lo * self.i_hi
    }
    fn n_out(&self) -> usize {
        self.j_lo * self.j_hi
    }
    fn t_len(&self) -> usize {
        self.i_lo * self.r * self.j_hi
    }
    /// Samples per parallel task: at least two tasks per thread, and few enough that a task's
    /// `T` (and `dT`) stays in cache (about 2 MB) between the two GEMMs that write and read it.
    fn chunk(&self) -> usize {
        let per_thread = self.batch.div_ceil(2 * rayon::current_num_threads());
        let cached = (1 << 19) / self.t_len().max(1);
        per_thread.min(cached).max(1)
    }
}

fn view(a: &[f32], m: usize, n: usize) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(a, m, n)
}

fn view_mut(a: &mut [f32], m: usize, n: usize) -> MatMut<'_, f32> {
    MatMut::from_row_major_slice_mut(a, m, n)
}

/// `y` (`[B, N_out]`) and the intermediate `T` (`[B, I_< r J_>=]`, kept for the backward).
pub fn forward(s: &SplitShape, x: &[f32], a: &[f32], m: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (c, rj) = (s.chunk(), s.r * s.j_hi);
    let mut y = vec![0f32; s.batch * s.n_out()];
    let mut t = vec![0f32; s.batch * s.t_len()];
    if y.is_empty() || t.is_empty() {
        return (y, t);
    }
    let a_t = view(a, s.i_lo * s.r, s.j_lo).transpose();
    y.par_chunks_mut(c * s.n_out())
        .zip(t.par_chunks_mut(c * s.t_len()))
        .zip(x.par_chunks(c * s.n_in()))
        .for_each(|((y_c, t_c), x_c)| {
            let rows = x_c.len() / s.i_hi;
            let tm = view_mut(t_c, rows, rj);
            matmul(
                tm,
                Accum::Replace,
                view(x_c, rows, s.i_hi),
                view(m, s.i_hi, rj),
                1.0,
                Par::Seq,
            );
            for (y_b, t_b) in y_c.chunks_exact_mut(s.n_out()).zip(t_c.chunks_exact(s.t_len())) {
                let dst = view_mut(y_b, s.j_lo, s.j_hi);
                matmul(
                    dst,
                    Accum::Replace,
                    a_t,
                    view(t_b, s.i_lo * s.r, s.j_hi),
                    1.0,
                    Par::Seq,
                );
            }
        });
    (y, t)
}

/// Per-thread accumulators of [`backward`].
struct Acc {
    da: Vec<f32>,
    dm: Vec<f32>,
}

/// `(dx, dA, dM)` for the output gradient `dy`, given `x`, `A`, `M` and the forward's `T`; `dx`
/// only when `need_dx`.
pub fn backward(
    s: &SplitShape,
    x: &[f32],
    a: &[f32],
    m: &[f32],
    t: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (c, rj, ir) = (s.chunk(), s.r * s.j_hi, s.i_lo * s.r);
    let mut dx = vec![0f32; if need_dx { x.len() } else { 0 }];
    let init = || Acc {
        da: vec![0.0; ir * s.j_lo],
        dm: vec![0.0; s.i_hi * rj],
    };
    let a_mat = view(a, ir, s.j_lo);
    let chunk = |mut acc: Acc, x_c: &[f32], t_c: &[f32], dy_c: &[f32], dx_c: Option<&mut [f32]>| {
        let samples = x_c.len() / s.n_in();
        // dT of the chunk lives in this thread's scratch, reused every call
        super::scratch::with_scratch(samples * s.t_len(), |dt| {
            for ((dt_b, t_b), dy_b) in dt
                .chunks_exact_mut(s.t_len())
                .zip(t_c.chunks_exact(s.t_len()))
                .zip(dy_c.chunks_exact(s.n_out()))
            {
                let dy_b = view(dy_b, s.j_lo, s.j_hi);
                // dT_b = A dY_b
                matmul(
                    view_mut(dt_b, ir, s.j_hi),
                    Accum::Replace,
                    a_mat,
                    dy_b,
                    1.0,
                    Par::Seq,
                );
                // dA += T_b dY_b^T
                let da = view_mut(&mut acc.da, ir, s.j_lo);
                matmul(
                    da,
                    Accum::Add,
                    view(t_b, ir, s.j_hi),
                    dy_b.transpose(),
                    1.0,
                    Par::Seq,
                );
            }
            let rows = samples * s.i_lo;
            let (dt_rows, x_rows) = (view(dt, rows, rj), view(x_c, rows, s.i_hi));
            // dM += X^T dT
            let dm = view_mut(&mut acc.dm, s.i_hi, rj);
            matmul(dm, Accum::Add, x_rows.transpose(), dt_rows, 1.0, Par::Seq);
            if let Some(dx_c) = dx_c {
                // dX = dT M^T
                let dst = view_mut(dx_c, rows, s.i_hi);
                matmul(
                    dst,
                    Accum::Replace,
                    dt_rows,
                    view(m, s.i_hi, rj).transpose(),
                    1.0,
                    Par::Seq,
                );
            }
        });
        acc
    };
    let reduce = |mut p: Acc, q: Acc| {
        p.da.iter_mut().zip(&q.da).for_each(|(u, v)| *u += v);
        p.dm.iter_mut().zip(&q.dm).for_each(|(u, v)| *u += v);
        p
    };
    let parts = x
        .par_chunks(c * s.n_in())
        .zip(t.par_chunks(c * s.t_len()))
        .zip(dy.par_chunks(c * s.n_out()));
    let acc = if need_dx {
        parts
            .zip(dx.par_chunks_mut(c * s.n_in()))
            .fold(init, |acc, (((x_c, t_c), dy_c), dx_c)| {
                chunk(acc, x_c, t_c, dy_c, Some(dx_c))
            })
            .reduce(init, reduce)
    } else {
        parts
            .fold(init, |acc, ((x_c, t_c), dy_c)| chunk(acc, x_c, t_c, dy_c, None))
            .reduce(init, reduce)
    };
    (need_dx.then_some(dx), acc.da, acc.dm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::scratch::test_values as values;

    /// `y[b, jl, jh] = sum_{il, ih, r} x[b, il, ih] M[ih, r, jh] A[il, r, jl]` in f64.
    fn naive(s: &SplitShape, x: &[f32], a: &[f32], m: &[f32]) -> Vec<f64> {
        let mut y = vec![0f64; s.batch * s.n_out()];
        for b in 0..s.batch {
            for jl in 0..s.j_lo {
                for jh in 0..s.j_hi {
                    let mut acc = 0f64;
                    for il in 0..s.i_lo {
                        for ih in 0..s.i_hi {
                            for r in 0..s.r {
                                let xv = f64::from(x[b * s.n_in() + il * s.i_hi + ih]);
                                let mv = f64::from(m[(ih * s.r + r) * s.j_hi + jh]);
                                let av = f64::from(a[(il * s.r + r) * s.j_lo + jl]);
                                acc += xv * mv * av;
                            }
                        }
                    }
                    y[b * s.n_out() + jl * s.j_hi + jh] = acc;
                }
            }
        }
        y
    }

    const SHAPES: [SplitShape; 3] = [
        SplitShape::from_dims([5, 3, 4, 2, 2, 3]),
        SplitShape::from_dims([1, 2, 3, 3, 4, 1]),
        SplitShape::from_dims([9, 1, 5, 1, 3, 2]),
    ];

    #[test]
    fn forward_matches_the_definition() {
        for s in SHAPES {
            let (x, a, m) = (
                values(s.batch * s.n_in(), 1),
                values(s.i_lo * s.r * s.j_lo, 2),
                values(s.i_hi * s.r * s.j_hi, 3),
            );
            let (y, _) = forward(&s, &x, &a, &m);
            for (g, e) in y.iter().zip(naive(&s, &x, &a, &m)) {
                assert!((f64::from(*g) - e).abs() < 1e-5, "{s:?}: {g} vs {e}");
            }
        }
    }

    /// `L = <dy, y>` is linear in each of x, A, M: a unit step in one entry changes `L` by exactly
    /// that entry's gradient.
    #[test]
    fn backward_gives_the_gradients_of_the_definition() {
        for s in SHAPES {
            let (x, a, m) = (
                values(s.batch * s.n_in(), 4),
                values(s.i_lo * s.r * s.j_lo, 5),
                values(s.i_hi * s.r * s.j_hi, 6),
            );
            let dy = values(s.batch * s.n_out(), 7);
            let (_, t) = forward(&s, &x, &a, &m);
            let (dx, da, dm) = backward(&s, &x, &a, &m, &t, &dy, true);
            let loss = |x: &[f32], a: &[f32], m: &[f32]| -> f64 {
                naive(&s, x, a, m)
                    .iter()
                    .zip(&dy)
                    .map(|(y, g)| y * f64::from(*g))
                    .sum()
            };
            let l0 = loss(&x, &a, &m);
            let bump = |v: &[f32], i: usize| {
                let mut w = v.to_vec();
                w[i] += 1.0;
                w
            };
            for (i, g) in dx.unwrap().iter().enumerate() {
                let fd = loss(&bump(&x, i), &a, &m) - l0;
                assert!((fd - f64::from(*g)).abs() < 1e-4, "{s:?} dx[{i}]: {fd} vs {g}");
            }
            for (i, g) in da.iter().enumerate() {
                let fd = loss(&x, &bump(&a, i), &m) - l0;
                assert!((fd - f64::from(*g)).abs() < 1e-4, "{s:?} dA[{i}]: {fd} vs {g}");
            }
            for (i, g) in dm.iter().enumerate() {
                let fd = loss(&x, &a, &bump(&m, i)) - l0;
                assert!((fd - f64::from(*g)).abs() < 1e-4, "{s:?} dM[{i}]: {fd} vs {g}");
            }
            let (none, da2, dm2) = backward(&s, &x, &a, &m, &t, &dy, false);
            assert!(none.is_none());
            assert_eq!((da, dm), (da2, dm2));
        }
    }
}
