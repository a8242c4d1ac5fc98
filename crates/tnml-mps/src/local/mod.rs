//! The local problem of a two-site update: the quadratic cost solved by conjugate gradients on
//! the normal equations ([`cgls`]), or softmax cross-entropy solved by nonlinear conjugate
//! gradients with exact line searches ([`cg_softmax`]).
//!
//! At bond (j, j+1) every training sample becomes the projected input
//! `Phi~_n = l_n (x) phi(x_{n,j}) (x) phi(x_{n,j+1}) (x) r_n` and the model output is
//! `f^l_n = <B^l, Phi~_n>`. With `X[n, (a,s,t)] = l_n[a] phi_s phi_t` the forward map is
//!
//! ```text
//!   (A B)[n, l] = sum_b (X B)[n, (l, b)] r_n[b]          one GEMM  n x (D d^2) x (L D)
//!   (A^T E)[(a,s,t), (l,b)] = sum_n X[n,(a,s,t)] E[n,l] r_n[b] = X^T (E (x)_row r)
//! ```
//!
//! and the cost `C(B) = 1/2 ||A B - Y||^2 + lambda/2 ||B||^2` (one-hot `Y`) is minimized by a few
//! CGLS iterations warm-started at the current `B`: each iteration is one exact line search
//! along a conjugate direction, so the step size adapts to every bond (a fixed gradient step is
//! known to vanish or explode across bonds). Cost per iteration: two GEMMs of
//! `2 n (D d^2)(L D)` flops, each fused with its row-wise contraction / outer product per block
//! of samples, so the `n x (L D)` intermediates stay in cache. [`LocalOp`] (in `op`) groups the
//! samples by white pixels, which leaves out the columns of `X` that are zero.

use rayon::prelude::*;

use crate::exp::exp_neg_slice;
use crate::gemm::SUM_BLOCK_ROWS;

mod op;
pub(crate) use op::LocalOp;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

/// Runs `passes` CGLS iterations from `b`; returns the residual `Y - A b` of the final `b` and
/// the flops spent.
pub(crate) fn cgls(
    op: &LocalOp<'_>,
    b: &mut [f32],
    y: &[f32],
    passes: usize,
    lambda: f64,
) -> (Vec<f32>, f64) {
    let mut flops = 0.0;
    let ab = op.apply(b);
    flops += op.flops();
    let mut r: Vec<f32> = y.iter().zip(&ab).map(|(y, f)| y - f).collect();
    if passes == 0 {
        return (r, flops);
    }
    let grad = |r: &[f32], b: &[f32]| -> Vec<f32> {
        let mut s = op.adjoint(r);
        if lambda > 0.0 {
            s.iter_mut().zip(b).for_each(|(s, b)| *s -= (lambda as f32) * b);
        }
        s
    };
    let mut s = grad(&r, b);
    flops += op.flops();
    let mut p = s.clone();
    let mut gamma = dot(&s, &s);
    for pass in 0..passes {
        if gamma == 0.0 || !gamma.is_finite() {
            break;
        }
        let q = op.apply(&p);
        flops += op.flops();
        let delta = op.total(dot(&q, &q)) + lambda * dot(&p, &p);
        if delta <= 0.0 || !delta.is_finite() {
            break;
        }
        let alpha = (gamma / delta) as f32;
        b.iter_mut().zip(&p).for_each(|(b, p)| *b += alpha * p);
        r.iter_mut().zip(&q).for_each(|(r, q)| *r -= alpha * q);
        if pass + 1 == passes {
            break;
        }
        s = grad(&r, b);
        flops += op.flops();
        let gamma_next = dot(&s, &s);
        let beta = (gamma_next / gamma) as f32;
        p.iter_mut().zip(&s).for_each(|(p, s)| *p = s + beta * *p);
        gamma = gamma_next;
    }
    (r, flops)
}

/// Rows of `w` (`rows x L`, f64) shifted by their maxima and exponentiated in place, one
/// vectorized pass ([`exp_neg_slice`]): `w[i, l] = exp(w[i, l] - max_l w[i, l])`.
fn exp_rows(w: &mut [f64], big_l: usize) {
    for row in w.chunks_exact_mut(big_l) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        row.iter_mut().for_each(|v| *v -= max);
    }
    exp_neg_slice(w);
}

/// Softmax probabilities of each row of logits `z` (`n x L`), in f64 (parallel over blocks of
/// rows).
fn softmax_rows(z: &[f32], big_l: usize) -> Vec<f64> {
    let mut p: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    p.par_chunks_mut(SUM_BLOCK_ROWS * big_l).for_each(|block| {
        exp_rows(block, big_l);
        for row in block.chunks_exact_mut(big_l) {
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= sum);
        }
    });
    p
}

/// `sum_i f(block_i)` over the blocks of [`SUM_BLOCK_ROWS`] samples of `z` (`n x L`) and
/// `labels`, each block summed sequentially on some thread and the blocks' sums added in order:
/// parallel, and the same result whatever the thread count.
fn sum_over_blocks<const K: usize>(
    z: &[f32],
    labels: &[usize],
    big_l: usize,
    f: impl Fn(usize, &[f32], &[usize]) -> [f64; K] + Sync,
) -> [f64; K] {
    let parts: Vec<[f64; K]> = z
        .par_chunks(SUM_BLOCK_ROWS * big_l)
        .zip(labels.par_chunks(SUM_BLOCK_ROWS))
        .enumerate()
        .map(|(b, (zb, yb))| f(b * SUM_BLOCK_ROWS, zb, yb))
        .collect();
    parts.iter().fold([0.0; K], |mut acc, p| {
        acc.iter_mut().zip(p).for_each(|(a, v)| *a += v);
        acc
    })
}

/// `sum_n CE(z_n, y_n)` for logits `z` (`n x L`).
fn cross_entropy(z: &[f32], labels: &[usize], big_l: usize) -> f64 {
    sum_over_blocks(z, labels, big_l, |_, zb, yb| {
        let mut w: Vec<f64> = zb.iter().map(|&v| f64::from(v)).collect();
        exp_rows(&mut w, big_l);
        [zb.chunks_exact(big_l)
            .zip(w.chunks_exact(big_l))
            .zip(yb)
            .map(|((zr, wr), &y)| {
                let max = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f64 = wr.iter().sum();
                f64::from(max) + sum.ln() - f64::from(zr[y])
            })
            .sum()]
    })[0]
}

/// Minimizes `sum_n CE(softmax(A b)_n, y_n) + lambda/2 ||b||^2` over `b` by `passes`
/// iterations of nonlinear conjugate gradients (Polak-Ribiere+) warm-started at `b`. Along each
/// direction `p` the logits move as `z + t q` with `q = A p`, so the line search is an exact
/// one-dimensional Newton iteration on the `n x L` values, without further products: one
/// `apply` and one `adjoint` per pass, as in [`cgls`]. Returns the logits `A b` of the final `b`,
/// the cross-entropy summed over all ranks' samples and the flops spent.
pub(crate) fn cg_softmax(
    op: &LocalOp<'_>,
    b: &mut [f32],
    labels: &[usize],
    passes: usize,
    lambda: f64,
) -> (Vec<f32>, f64, f64) {
    let big_l = op.labels;
    let mut flops = op.flops();
    let mut z = op.apply(b);
    let grad = |z: &[f32], b: &[f32]| -> Vec<f32> {
        let mut e: Vec<f32> = softmax_rows(z, big_l).iter().map(|&v| v as f32).collect();
        for (row, &y) in e.chunks_exact_mut(big_l).zip(labels) {
            row[y] -= 1.0;
        }
        let mut g = op.adjoint(&e);
        if lambda > 0.0 {
            g.iter_mut().zip(b).for_each(|(g, b)| *g += (lambda as f32) * b);
        }
        g
    };
    let (mut g_prev, mut p): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    for pass in 0..passes {
        let g = grad(&z, b);
        flops += op.flops();
        let gg = dot(&g, &g);
        if gg == 0.0 || !gg.is_finite() {
            break;
        }
        let beta = if pass == 0 {
            0.0
        } else {
            let num = gg - dot(&g, &g_prev);
            (num / dot(&g_prev, &g_prev)).max(0.0)
        };
        if pass == 0 {
            p = g.iter().map(|v| -v).collect();
        } else {
            p.iter_mut().zip(&g).for_each(|(p, g)| *p = -g + beta as f32 * *p);
        }
        if dot(&p, &g) >= 0.0 {
            p = g.iter().map(|v| -v).collect();
        }
        let q = op.apply(&p);
        flops += op.flops();
        let t = line_search(op, &z, &q, labels, lambda, dot(b, &p), dot(&p, &p));
        if t == 0.0 {
            break;
        }
        b.iter_mut().zip(&p).for_each(|(b, p)| *b += t as f32 * p);
        z.iter_mut().zip(&q).for_each(|(z, q)| *z += t as f32 * q);
        g_prev = g;
    }
    let loss = op.total(cross_entropy(&z, labels, big_l));
    (z, loss, flops)
}

/// Newton steps of the line search stop once `|phi'(t)| <= LINE_SEARCH_TOLERANCE |phi'(0)|`
/// (about 3 evaluations of `phi'` per search; 1e-3 instead saved 2% of a sweep's time).
const LINE_SEARCH_TOLERANCE: f64 = 1e-6;

/// Exact line search for `phi(t) = sum_n CE(z + t q) + lambda/2 ||b + t p||^2` (given `b.p` and
/// `p.p`). `phi` is convex in `t`, so its minimizer is the root of `phi'`: Newton steps kept
/// inside a bracket `[lo, hi]` with `phi'(lo) < 0 < phi'(hi)` (bisection when a step leaves it).
/// Each step is one pass over the `n x L` logits (and one sum of two scalars over the ranks).
/// Returns 0 when `p` is not a descent direction.
fn line_search(
    op: &LocalOp<'_>,
    z: &[f32],
    q: &[f32],
    labels: &[usize],
    lambda: f64,
    bp: f64,
    pp: f64,
) -> f64 {
    let big_l = op.labels;
    let derivs = |t: f64| -> (f64, f64) {
        let [d1, d2] = sum_over_blocks(z, labels, big_l, |start, zb, yb| {
            let qb = &q[start * big_l..start * big_l + zb.len()];
            // e = exp(z + t q - rowmax) for the whole block, then the moments of q per row
            let mut e: Vec<f64> = zb
                .iter()
                .zip(qb)
                .map(|(&zi, &qi)| f64::from(zi) + t * f64::from(qi))
                .collect();
            exp_rows(&mut e, big_l);
            let (mut d1, mut d2) = (0.0, 0.0);
            for ((er, qr), &y) in e.chunks_exact(big_l).zip(qb.chunks_exact(big_l)).zip(yb) {
                let (mut sum, mut m1, mut m2) = (0.0, 0.0, 0.0);
                for (&w, &qi) in er.iter().zip(qr) {
                    let qi = f64::from(qi);
                    sum += w;
                    m1 += w * qi;
                    m2 += w * qi * qi;
                }
                let (m1, m2) = (m1 / sum, m2 / sum);
                d1 += m1 - f64::from(qr[y]);
                d2 += m2 - m1 * m1;
            }
            [d1, d2]
        });
        let mut sums = [d1, d2];
        op.comm.sum_f64(&mut sums);
        let [d1, d2] = sums;
        (d1 + lambda * (bp + t * pp), d2 + lambda * pp)
    };
    let (d0, h0) = derivs(0.0);
    let descent = d0 < 0.0 && h0 > 0.0;
    if !descent {
        return 0.0;
    }
    let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
    let (mut t, mut d1, mut d2) = (0.0, d0, h0);
    for _ in 0..6 {
        let mut next = t - d1 / d2;
        if !(next > lo && next < hi) {
            next = if hi.is_finite() {
                0.5 * (lo + hi)
            } else {
                2.0 * t.max(-d0 / h0)
            };
        }
        t = next;
        (d1, d2) = derivs(t);
        if !d1.is_finite() || !d2.is_finite() {
            hi = t;
            t = lo;
            continue;
        }
        if d1 < 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        if d1.abs() <= LINE_SEARCH_TOLERANCE * d0.abs() || d2 <= 0.0 {
            break;
        }
    }
    // a point with phi' <= 0 never overshoots the minimum; with phi' > 0 it may, so fall back
    // to the bracket's left end (where phi is below phi(0))
    if d1.is_finite() && (d1 <= 0.0 || d1.abs() <= 0.1 * d0.abs()) {
        t
    } else {
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::SingleProcess;

    #[test]
    fn cg_softmax_lowers_the_cross_entropy_to_a_stationary_point() {
        let (n, k) = (40, 3);
        let x: Vec<f32> = (0..n * k).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let r: Vec<f32> = (0..n * 2).map(|i| ((i * 13 % 5) as f32 + 1.0) / 5.0).collect();
        let labels: Vec<usize> = (0..n).map(|i| (i * 7) % 3).collect();
        let op = LocalOp::dense(&x, &r, n, k, 3, 2, &SingleProcess);
        let mut b = vec![0f32; k * 3 * 2];
        let start = n as f64 * 3f64.ln();
        let (z, loss, _) = cg_softmax(&op, &mut b, &labels, 60, 0.5);
        assert!(loss < start, "{loss} vs {start}");
        assert!((loss - cross_entropy(&op.apply(&b), &labels, 3)).abs() < 1e-3 * loss);
        assert!(z.iter().zip(op.apply(&b)).all(|(a, c)| (a - c).abs() < 1e-3));
        // stationary: A^T (softmax - Y) + lambda b = 0
        let mut e: Vec<f32> = softmax_rows(&z, 3).iter().map(|&v| v as f32).collect();
        for (row, &y) in e.chunks_exact_mut(3).zip(&labels) {
            row[y] -= 1.0;
        }
        let g = op.adjoint(&e);
        let norm: f64 = g
            .iter()
            .zip(&b)
            .map(|(g, b)| f64::from(g + 0.5 * b).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(norm < 1e-2, "gradient norm {norm}");
    }

    #[test]
    fn cgls_solves_a_small_least_squares_problem_exactly() {
        // n = 6 samples, k = 3 features, 2 labels, right = 1: a plain least-squares problem with
        // 6 unknowns; CGLS converges in at most 6 iterations.
        let x: Vec<f32> = vec![
            1., 0., 1., 0., 1., 1., 1., 1., 0., 2., 1., 0., 0., 2., 1., 1., 1., 1.,
        ];
        let r = vec![1f32; 6];
        let y: Vec<f32> = vec![1., 0., 0., 1., 1., 0., 0., 1., 1., 0., 0., 1.];
        let op = LocalOp::dense(&x, &r, 6, 3, 2, 1, &SingleProcess);
        let mut b = vec![0f32; 6];
        let (res, _) = cgls(&op, &mut b, &y, 6, 0.0);
        // optimality: the gradient A^T (Y - A b) vanishes
        let g = op.adjoint(&res);
        assert!(g.iter().all(|v| v.abs() < 1e-4), "{g:?}");
        // and the residual really is Y - A b
        let f = op.apply(&b);
        for ((yy, ff), rr) in y.iter().zip(&f).zip(&res) {
            assert!((yy - ff - rr).abs() < 1e-5);
        }
    }
}
