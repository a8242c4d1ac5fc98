//! Multinomial logistic regression (softmax, cross-entropy) on fixed features, solved by L-BFGS.
//!
//! For features `X` (`n x p`, one row per sample), labels `y_n` and weights `W` (`L x p`):
//!
//! ```text
//!   z_n = W x_n,    loss(W) = 1/n sum_n [ logsumexp(z_n) - z_n[y_n] ] + lambda/2 ||W||^2
//!   grad  = 1/n (S - Y)^T X + lambda W,     S = softmax(z) row-wise, Y one-hot
//! ```
//!
//! The loss is convex, so L-BFGS (two-loop recursion, 10 pairs, Armijo backtracking) converges
//! from any start. Cost per evaluation: two GEMMs of `2 n p L` flops.

use rayon::prelude::*;
use tnml_core::faer::linalg::matmul::matmul;
use tnml_core::faer::{Accum, Mat, MatRef, Par};

use crate::exp::exp_neg;
use crate::gemm::SUM_BLOCK_ROWS;

/// What the fit did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftmaxFit {
    /// Mean cross-entropy plus penalty at the end.
    pub loss: f64,
    /// L-BFGS iterations run.
    pub iterations: usize,
    /// Euclidean norm of the final gradient.
    pub grad_norm: f64,
}

/// Blocks whose results are held at once before they are added (bounds the memory to this many
/// `L x p` gradients).
const WAVE: usize = 16;

/// Loss and gradient at `w` (`L x p`, row-major) for features `x` and labels; parallel over
/// blocks of [`SUM_BLOCK_ROWS`] samples (rayon), each block two sequential faer GEMMs, the
/// blocks' sums added in block order: the result does not depend on the thread count.
fn loss_grad(x: MatRef<'_, f64>, labels: &[usize], w: &[f64], lambda: f64) -> (f64, Vec<f64>) {
    let (n, p) = (x.nrows(), x.ncols());
    let big_l = w.len() / p.max(1);
    let wm = MatRef::from_row_major_slice(w, big_l, p);
    let block = SUM_BLOCK_ROWS;
    let starts: Vec<usize> = (0..n).step_by(block).collect();
    let one_block = |start: usize| {
        let rows = block.min(n - start);
        let xb = x.subrows(start, rows);
        let mut z = Mat::<f64>::zeros(rows, big_l);
        matmul(z.as_mut(), Accum::Replace, xb, wm.transpose(), 1.0, Par::Seq);
        let mut loss = 0.0;
        for i in 0..rows {
            let y = labels[start + i];
            let max = (0..big_l).map(|l| z[(i, l)]).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..big_l).map(|l| exp_neg(z[(i, l)] - max)).sum();
            loss += max + sum.ln() - z[(i, y)];
            for l in 0..big_l {
                let s = exp_neg(z[(i, l)] - max) / sum;
                z[(i, l)] = s - if l == y { 1.0 } else { 0.0 };
            }
        }
        let mut g = Mat::<f64>::zeros(big_l, p);
        matmul(g.as_mut(), Accum::Replace, z.transpose(), xb, 1.0, Par::Seq);
        (loss, g)
    };
    let (mut loss, mut g) = (0.0, Mat::<f64>::zeros(big_l, p));
    for wave in starts.chunks(WAVE) {
        let parts: Vec<(f64, Mat<f64>)> = wave.par_iter().map(|&start| one_block(start)).collect();
        for (lb, gb) in parts {
            loss += lb;
            g += gb;
        }
    }
    let inv_n = 1.0 / n.max(1) as f64;
    let mut grad = vec![0f64; big_l * p];
    for l in 0..big_l {
        for j in 0..p {
            grad[l * p + j] = g[(l, j)] * inv_n + lambda * w[l * p + j];
        }
    }
    let penalty = 0.5 * lambda * w.iter().map(|v| v * v).sum::<f64>();
    (loss * inv_n + penalty, grad)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimizes the softmax loss over `w` (`L x p` row-major, used as the start) for features `x`
/// (`n x p`) and `labels` (each `< L`). Stops after `max_iters` iterations or when the gradient
/// norm falls below `tol`.
pub fn fit_softmax(
    x: MatRef<'_, f64>,
    labels: &[usize],
    w: &mut [f64],
    lambda: f64,
    max_iters: usize,
    tol: f64,
) -> SoftmaxFit {
    const HISTORY: usize = 10;
    let (mut f, mut g) = loss_grad(x, labels, w, lambda);
    let mut pairs: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    let mut iterations = 0;
    while iterations < max_iters && dot(&g, &g).sqrt() > tol {
        iterations += 1;
        // two-loop recursion: d = -H g
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(pairs.len());
        for (s, y, rho) in pairs.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
            alphas.push(a);
        }
        let gamma = pairs
            .last()
            .map_or(1.0 / dot(&g, &g).sqrt().max(1e-300), |(s, y, _)| {
                dot(s, y) / dot(y, y)
            });
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            pairs.clear();
            d = g.iter().map(|v| -v / dot(&g, &g).sqrt().max(1e-300)).collect();
            slope = dot(&g, &d);
        }
        // Armijo backtracking from the full quasi-Newton step
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let trial: Vec<f64> = w.iter().zip(&d).map(|(w, d)| w + t * d).collect();
            let (ft, gt) = loss_grad(x, labels, &trial, lambda);
            if ft.is_finite() && ft <= f + 1e-4 * t * slope {
                accepted = Some((trial, ft, gt));
                break;
            }
            t *= 0.5;
        }
        let Some((trial, ft, gt)) = accepted else { break };
        let s: Vec<f64> = trial.iter().zip(w.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gt.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&y, &y).max(1e-300) {
            if pairs.len() == HISTORY {
                pairs.remove(0);
            }
            pairs.push((s, y, 1.0 / sy));
        }
        w.copy_from_slice(&trial);
        (f, g) = (ft, gt);
    }
    SoftmaxFit {
        loss: f,
        iterations,
        grad_norm: dot(&g, &g).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic features (`n x p`), labels of `big_l` classes and a start `w` (`big_l x p`).
    fn problem(n: usize, p: usize, big_l: usize) -> (Vec<f64>, Vec<usize>, Vec<f64>) {
        let x = (0..n * p).map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0).collect();
        let labels = (0..n).map(|i| (i * 7) % big_l).collect();
        let w = (0..big_l * p)
            .map(|i| ((i * 13 % 11) as f64 - 5.0) / 10.0)
            .collect();
        (x, labels, w)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (n, p) = (40, 5);
        let (x, labels, w) = problem(n, p, 3);
        let xm = MatRef::from_row_major_slice(&x, n, p);
        let (_, g) = loss_grad(xm, &labels, &w, 0.3);
        for k in 0..w.len() {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[k] += 1e-6;
            wm[k] -= 1e-6;
            let fd = (loss_grad(xm, &labels, &wp, 0.3).0 - loss_grad(xm, &labels, &wm, 0.3).0) / 2e-6;
            assert!((fd - g[k]).abs() < 1e-6, "k {k}: {fd} vs {}", g[k]);
        }
    }

    #[test]
    fn separable_data_is_fitted_and_the_optimum_has_zero_gradient() {
        // three clusters around orthogonal directions, plus a constant feature
        let (n, p, big_l) = (90, 4, 3);
        let mut x = vec![0f64; n * p];
        let labels: Vec<usize> = (0..n).map(|i| i % big_l).collect();
        for (i, &l) in labels.iter().enumerate() {
            x[i * p + l] = 1.0 + (i as f64 * 0.37).sin() * 0.3;
            x[i * p + (l + 1) % big_l] = (i as f64 * 0.91).cos() * 0.3;
            x[i * p + 3] = 1.0;
        }
        let xm = MatRef::from_row_major_slice(&x, n, p);
        let mut w = vec![0f64; big_l * p];
        let fit = fit_softmax(xm, &labels, &mut w, 1e-2, 500, 1e-9);
        assert!(fit.grad_norm < 1e-6, "{fit:?}");
        let start = (big_l as f64).ln();
        assert!(fit.loss < 0.5 * start, "{fit:?}");
        for (i, &l) in labels.iter().enumerate() {
            let z: Vec<f64> = (0..big_l)
                .map(|c| (0..p).map(|j| w[c * p + j] * x[i * p + j]).sum())
                .collect();
            let best = (0..big_l).max_by(|a, b| z[*a].total_cmp(&z[*b])).unwrap_or(0);
            assert_eq!(best, l, "sample {i}");
        }
    }

    /// Blocks of a fixed size added in block order: the loss and gradient are the same bit for
    /// bit on 1, 2 or 5 threads (5,000 samples: 5 blocks; before, the block size followed the
    /// thread count).
    #[test]
    fn loss_and_gradient_do_not_depend_on_the_thread_count() {
        let (n, p) = (5000, 7);
        let (x, labels, w) = problem(n, p, 4);
        let xm = MatRef::from_row_major_slice(&x, n, p);
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| loss_grad(xm, &labels, &w, 0.1))
        };
        let (l1, g1) = on(1);
        for threads in [2, 5] {
            let (l, g) = on(threads);
            assert_eq!(l.to_bits(), l1.to_bits(), "{threads} threads: loss {l} vs {l1}");
            assert_eq!(g, g1, "{threads} threads");
        }
    }
}
