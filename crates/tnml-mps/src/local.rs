//! The local problem of a two-site update, solved by conjugate gradients on the normal
//! equations (CGLS).
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
//! of samples, so the `n x (L D)` intermediates stay in cache.

use crate::gemm::{gemm_at_outer, gemm_contract_rows};

/// The linear map `B -> (f^l_n)` of one bond.
pub(crate) struct LocalOp<'a> {
    /// `n x k` projected left part, `k = left * d * d`.
    pub x: &'a [f32],
    /// `n x right` right environments.
    pub r: &'a [f32],
    pub n: usize,
    pub k: usize,
    pub labels: usize,
    pub right: usize,
}

impl LocalOp<'_> {
    /// `A B` for `B` of shape `k x (labels * right)`: returns `n x labels`.
    pub fn apply(&self, b: &[f32]) -> Vec<f32> {
        gemm_contract_rows(self.x, self.n, self.k, b, self.labels, self.r, self.right)
    }

    /// `A^T E` for `E` of shape `n x labels`: returns `k x (labels * right)`.
    pub fn adjoint(&self, e: &[f32]) -> Vec<f32> {
        gemm_at_outer(self.x, self.n, self.k, e, self.labels, self.r, self.right)
    }

    /// Flops of one `apply` or `adjoint`.
    pub fn flops(&self) -> f64 {
        2.0 * self.n as f64 * self.k as f64 * (self.labels * self.right) as f64
    }
}

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
        let delta = dot(&q, &q) + lambda * dot(&p, &p);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgls_solves_a_small_least_squares_problem_exactly() {
        // n = 6 samples, k = 3 features, 2 labels, right = 1: a plain least-squares problem with
        // 6 unknowns; CGLS converges in at most 6 iterations.
        let x: Vec<f32> = vec![
            1., 0., 1., 0., 1., 1., 1., 1., 0., 2., 1., 0., 0., 2., 1., 1., 1., 1.,
        ];
        let r = vec![1f32; 6];
        let y: Vec<f32> = vec![1., 0., 0., 1., 1., 0., 0., 1., 1., 0., 0., 1.];
        let op = LocalOp {
            x: &x,
            r: &r,
            n: 6,
            k: 3,
            labels: 2,
            right: 1,
        };
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
