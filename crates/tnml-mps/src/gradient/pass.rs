//! One forward and backward pass of a block of a minibatch, on one thread, in a workspace that
//! lives as long as the trainer (no allocation per batch once it has grown).
//!
//! With `A_k[a, s, b]` seen as the `left x (d right)` matrix of site `k` and `phi_k` the
//! `n x d` features of the block at site `k`, every step is one small GEMM and a row-wise
//! combination with `phi` (left to right, then right to left, then the two backward sweeps):
//!
//! ```text
//!   l_{k+1} = sum_s phi_s (l_k A_k)[:, s, :]            (n x l) (l x d r)      forward, k < c
//!   Y_k = phi_k (x) r_{k+1},  r_k = Y_k A_k^T           (n x d r) (d r x l)    forward, k > c
//!   G_k = (phi_k (x) G_{k+1}) A_k^T                     (n x d r) (d r x l)    backward, k < c
//!   H_{k+1} = sum_s phi_s (H_k A_k)[:, s, :]            (n x l) (l x d r)      backward, k > c
//!   dA_k = gl_k^T gr_k, gl_k = l_k e^scale, gr_k = phi_k (x) G_{k+1}   (k < c)
//!                       gl_k = H_k e^scale, gr_k = Y_k                  (k > c)
//! ```
//!
//! A block's pass runs the four chains (`4 n N d D^2` flops) and keeps the two factors of every
//! site's gradient (`n (D + d D)` floats a site); the gradient products (`2 n N d D^2` flops)
//! are formed afterwards site by site, one GEMM over the whole batch's factors
//! ([`super::factors`]), so each site's gradient is written once per batch whatever the number
//! of blocks or threads. Every
//! partial contraction is kept with unit-norm rows and the `ln` of the removed scale per sample
//! (`f64`), recombined only where an output or a gradient is formed. The GEMMs are sequential
//! faer calls: the trainer runs one block per task, which keeps the threads busy on products of
//! a dozen rows that would not split.

use std::mem::take;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use tnml_core::faer;

use crate::feature::SiteFeatures;
use crate::model::{Decision, Loss};

/// Shape of one site: `(left, phys, right)`; the label site's `phys` is `d * labels`.
pub(super) type Shape = (usize, usize, usize);

/// One block's rows of every site's gradient factors (`gl[k]`: `n x l`, `gr[k]`: `n x p r`),
/// borrowed from the batch's ([`super::factors::BatchFactors`]).
#[derive(Debug)]
pub(super) struct BlockFactors<'a> {
    pub gl: Vec<&'a mut [f32]>,
    pub gr: Vec<&'a mut [f32]>,
}

/// Buffers of one block of a batch, reused from batch to batch.
#[derive(Debug, Default)]
pub(super) struct Workspace {
    /// Features of the block, per site `n x d`.
    phi: Vec<Vec<f32>>,
    /// Left partial contractions `l_k` (`k = 0..=c`), unit rows, and their log-scales.
    left: Vec<Vec<f32>>,
    left_log: Vec<Vec<f64>>,
    /// Right partial contractions `r_k` (`k = c+1..=N`) and their log-scales.
    right: Vec<Vec<f32>>,
    right_log: Vec<Vec<f64>>,
    /// Scratch: `n x (d r)` products, the carried gradient.
    wide: Vec<f32>,
    carry: Vec<f32>,
    carry_log: Vec<f64>,
    next: Vec<f32>,
}

/// What a block contributes to the batch: summed loss, wrong predictions.
pub(super) struct BlockOutcome {
    pub loss_sum: f64,
    pub wrong: usize,
}

/// The model as the pass reads it: `f32` sites, shapes, label site and count.
pub(super) struct Chain<'a> {
    pub sites: &'a [Vec<f32>],
    pub shapes: &'a [Shape],
    pub label_site: usize,
    pub labels: usize,
}

/// `out = a b` into row-major `out` (`m x n`), for any views `a` (`m x k`) and `b` (`k x n`).
pub(super) fn mm(out: &mut [f32], m: usize, a: MatRef<'_, f32>, b: MatRef<'_, f32>) {
    let n = b.ncols();
    let dst = MatMut::from_row_major_slice_mut(&mut out[..m * n], m, n);
    matmul(dst, Accum::Replace, a, b, 1.0f32, Par::Seq);
}

pub(super) fn rows(a: &[f32], m: usize, k: usize) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(&a[..m * k], m, k)
}

/// `out[i, b] = sum_s phi[i, s] t[i, s * w + b]` (`t` is `n x (d w)`).
fn combine(out: &mut Vec<f32>, t: &[f32], phi: &[f32], n: usize, d: usize, w: usize) {
    out.resize(n * w, 0.0);
    for ((o, ti), p) in out
        .chunks_exact_mut(w)
        .zip(t.chunks_exact(d * w))
        .zip(phi.chunks_exact(d))
    {
        let (first, rest) = ti.split_at(w);
        o.iter_mut().zip(first).for_each(|(x, y)| *x = p[0] * y);
        for (ts, &ps) in rest.chunks_exact(w).zip(&p[1..]) {
            o.iter_mut().zip(ts).for_each(|(x, y)| *x += ps * y);
        }
    }
}

/// `out[i, s * w + b] = phi[i, s] v[i, b]` (`out` holds at least `n d w` values).
fn outer(out: &mut [f32], phi: &[f32], v: &[f32], n: usize, d: usize, w: usize) {
    for ((o, vi), p) in out[..n * d * w]
        .chunks_exact_mut(d * w)
        .zip(v.chunks_exact(w))
        .zip(phi.chunks_exact(d))
    {
        for (os, &ps) in o.chunks_exact_mut(w).zip(p) {
            os.iter_mut().zip(vi).for_each(|(x, y)| *x = ps * y);
        }
    }
}

/// Rescales each row of width `w` by a power of two, `2^-e` with `e = floor(log2 |row|)`, so its
/// norm lands in `[1, 2)`, and adds `e ln 2` to the row's `log`: exact in floating point (only
/// the exponent changes), and no logarithm per row. A row whose squared norm over- or
/// underflows `f32` is scaled to unit norm in `f64`; a zero row gets `log = -inf`.
fn normalize(v: &mut [f32], w: usize, log: &mut [f64]) {
    for (row, l) in v.chunks_exact_mut(w).zip(log.iter_mut()) {
        let n2 = crate::gemm::dot_f32(row, row);
        if n2.is_normal() {
            // n2 = m 2^E with m in [1, 2): |row| = sqrt(m) 2^(E/2)
            let e = ((n2.to_bits() >> 23) & 0xff) as i32 - 127;
            let half = e.div_euclid(2);
            if half != 0 {
                let scale = f32::from_bits(((127 - half) as u32) << 23);
                row.iter_mut().for_each(|x| *x *= scale);
                *l += f64::from(half) * std::f64::consts::LN_2;
            }
            continue;
        }
        // the squared norm overflowed or underflowed f32 (or the row is zero): take it in f64
        let n2: f64 = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        if n2 == 0.0 {
            *l = f64::NEG_INFINITY;
        } else {
            let inv = 1.0 / n2.sqrt();
            row.iter_mut().for_each(|x| *x = (f64::from(*x) * inv) as f32);
            *l += 0.5 * n2.ln();
        }
    }
}

/// `out[i, :] = v[i, :] exp(a[i] + b[i])` (a zero row stays zero whatever its scale; `out`
/// and `v` hold `n w` values).
fn scale_rows(out: &mut [f32], v: &[f32], w: usize, a: &[f64], b: &[f64]) {
    out.copy_from_slice(v);
    for ((row, x), y) in out.chunks_exact_mut(w).zip(a).zip(b) {
        let s = (x + y).exp() as f32;
        if s.is_finite() {
            row.iter_mut().for_each(|v| *v *= s);
        } else {
            row.iter_mut()
                .for_each(|v| *v = if *v == 0.0 { 0.0 } else { *v * s });
        }
    }
}

fn reset<T: Clone + Default>(v: &mut Vec<Vec<T>>, count: usize) {
    v.resize(count, Vec::new());
}

/// The label site's outputs for a block: `U = sum_s phi_s l_c A_c` (`n x L x cr`), each
/// sample's log-scale `sigma = log_l + log_r`, and `delta = dLoss/df / batch` (`n x L`).
struct Head {
    u: Vec<f32>,
    sigma: Vec<f64>,
    delta: Vec<f32>,
    outcome: BlockOutcome,
}

impl Workspace {
    /// Loss, wrong predictions and the factors of the gradients of the samples `idx` of
    /// `feats` (written into `factors`, this block's rows of the batch's), each sample's loss gradient divided by
    /// `batch` (the whole minibatch's size, so that the blocks' gradients sum to the batch
    /// mean's).
    ///
    /// The steps: the block's features; the left partial contractions `l_k` up to the label
    /// site and the right ones `r_k` down to it, each row rescaled by a power of two with its
    /// log kept; the label site's scores, loss and `delta`; then the gradients, carried out of
    /// the label site into each wing.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &mut self,
        chain: &Chain<'_>,
        feats: &SiteFeatures,
        idx: &[usize],
        labels: &[usize],
        loss: Loss,
        decision: Decision,
        batch: usize,
        factors: &mut BlockFactors<'_>,
    ) -> BlockOutcome {
        self.gather(feats, idx, chain.sites.len());
        self.forward_left(chain, idx.len(), feats.dim);
        self.forward_right(chain, idx.len(), feats.dim, &mut factors.gr);
        let head = self.label_head(
            chain,
            idx.len(),
            feats.dim,
            |i| labels[idx[i]],
            loss,
            decision,
            batch,
        );
        if !head.outcome.loss_sum.is_finite() {
            return head.outcome;
        }
        self.backward_left(chain, idx.len(), feats.dim, &head, factors);
        self.backward_right(chain, idx.len(), feats.dim, &head, &mut factors.gl);
        head.outcome
    }

    /// `self.phi[k]`: the features of the samples `idx` at every site (`n x d`).
    fn gather(&mut self, feats: &SiteFeatures, idx: &[usize], n_sites: usize) {
        let d = feats.dim;
        reset(&mut self.phi, n_sites);
        for (dst, src) in self.phi.iter_mut().zip(&feats.sites) {
            dst.resize(idx.len() * d, 0.0);
            if d == 2 {
                // the usual feature maps: two loads and stores, not a `memcpy` call per sample
                for (o, &i) in dst.chunks_exact_mut(2).zip(idx) {
                    o[0] = src[2 * i];
                    o[1] = src[2 * i + 1];
                }
            } else {
                for (o, &i) in dst.chunks_exact_mut(d).zip(idx) {
                    o.copy_from_slice(&src[i * d..(i + 1) * d]);
                }
            }
        }
    }

    /// `l_{k+1} = sum_s phi_s (l_k A_k)` for `k < c`, rows normalized (`self.left`, `left_log`).
    fn forward_left(&mut self, chain: &Chain<'_>, n: usize, d: usize) {
        let (sites, shapes, c) = (chain.sites, chain.shapes, chain.label_site);
        reset(&mut self.left, c + 1);
        reset(&mut self.left_log, c + 1);
        self.left[0].clear();
        self.left[0].resize(n, 1.0);
        self.left_log[0].clear();
        self.left_log[0].resize(n, 0.0);
        for k in 0..c {
            let (l, _, r) = shapes[k];
            self.wide.resize(n * d * r, 0.0);
            mm(
                &mut self.wide,
                n,
                rows(&self.left[k], n, l),
                rows(&sites[k], l, d * r),
            );
            let (mut next, mut log) = (take(&mut self.left[k + 1]), take(&mut self.left_log[k + 1]));
            combine(&mut next, &self.wide, &self.phi[k], n, d, r);
            log.clear();
            log.extend_from_slice(&self.left_log[k]);
            normalize(&mut next, r, &mut log);
            (self.left[k + 1], self.left_log[k + 1]) = (next, log);
        }
    }

    /// `r_k = A_k (phi_k (x) r_{k+1})` for `k > c`: `self.right[j]` holds `r_{c+1+j}` and
    /// `gr[k]` the product `Y_k = phi_k (x) r_{k+1}` (the gradient's right factor).
    fn forward_right(&mut self, chain: &Chain<'_>, n: usize, d: usize, gr: &mut [&mut [f32]]) {
        let (sites, shapes, c) = (chain.sites, chain.shapes, chain.label_site);
        let n_sites = sites.len();
        let nr = n_sites - c; // r_{c+1} ..= r_N
        reset(&mut self.right, nr);
        reset(&mut self.right_log, nr);
        self.right[nr - 1].clear();
        self.right[nr - 1].resize(n, 1.0);
        self.right_log[nr - 1].clear();
        self.right_log[nr - 1].resize(n, 0.0);
        for k in (c + 1..n_sites).rev() {
            let j = k - c - 1;
            let (l, _, r) = shapes[k];
            let (mut next, mut log) = (take(&mut self.right[j]), take(&mut self.right_log[j]));
            outer(gr[k], &self.phi[k], &self.right[j + 1], n, d, r);
            next.resize(n * l, 0.0);
            mm(
                &mut next,
                n,
                rows(gr[k], n, d * r),
                rows(&sites[k], l, d * r).transpose(),
            );
            log.clear();
            log.extend_from_slice(&self.right_log[j + 1]);
            normalize(&mut next, l, &mut log);
            (self.right[j], self.right_log[j]) = (next, log);
        }
    }

    /// The label site: `T = l_c A_c` (`n x d L cr`), `U = sum_s phi_s T`, `f = U . r_{c+1}`
    /// scaled by `exp(sigma)`; the loss, mistakes and `delta` of each sample (`label(i)`).
    #[allow(clippy::too_many_arguments)]
    fn label_head(
        &mut self,
        chain: &Chain<'_>,
        n: usize,
        d: usize,
        label: impl Fn(usize) -> usize,
        loss: Loss,
        decision: Decision,
        batch: usize,
    ) -> Head {
        let (c, nl) = (chain.label_site, chain.labels);
        let (cl, _, cr) = chain.shapes[c];
        let (lc, rc) = (&self.left[c], &self.right[0]);
        let w = nl * cr;
        self.wide.resize(n * d * w, 0.0);
        mm(
            &mut self.wide,
            n,
            rows(lc, n, cl),
            rows(&chain.sites[c], cl, d * w),
        );
        let mut u = Vec::new();
        combine(&mut u, &self.wide, &self.phi[c], n, d, w);
        let (mut loss_sum, mut wrong) = (0.0, 0);
        let mut delta = vec![0f32; n * nl];
        let mut sigma = vec![0f64; n];
        let mut f = vec![0f64; nl];
        for i in 0..n {
            sigma[i] = self.left_log[c][i] + self.right_log[0][i];
            let e = sigma[i].exp();
            for (lab, fl) in f.iter_mut().enumerate() {
                let ui = &u[(i * nl + lab) * cr..(i * nl + lab + 1) * cr];
                let dot: f64 = ui
                    .iter()
                    .zip(&rc[i * cr..(i + 1) * cr])
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                *fl = dot * e;
            }
            let y = label(i);
            wrong += usize::from(decision.pick(&f) != y);
            loss_and_delta(
                loss,
                &f,
                y,
                batch,
                &mut delta[i * nl..(i + 1) * nl],
                &mut loss_sum,
            );
        }
        Head {
            u,
            sigma,
            delta,
            outcome: BlockOutcome { loss_sum, wrong },
        }
    }

    /// The label site's gradient factors `gl_c = l_c e^sigma`, `gr_c = Z = phi (x) delta (x)
    /// r_{c+1}`, then `G = Z A_c^T` carried left: `gl_k = l_k e^scale`, `gr_k = phi_k (x) G_{k+1}`.
    fn backward_left(
        &mut self,
        chain: &Chain<'_>,
        n: usize,
        d: usize,
        head: &Head,
        f: &mut BlockFactors<'_>,
    ) {
        let (sites, shapes, c, nl) = (chain.sites, chain.shapes, chain.label_site, chain.labels);
        let (cl, _, cr) = shapes[c];
        let w = nl * cr;
        let mut dr = vec![0f32; n * w];
        outer(&mut dr, &head.delta, &self.right[0], n, nl, cr);
        outer(f.gr[c], &self.phi[c], &dr, n, d, w);
        let zeros = vec![0f64; n];
        scale_rows(f.gl[c], &self.left[c], cl, &head.sigma, &zeros);
        self.carry.resize(n * cl, 0.0);
        mm(
            &mut self.carry,
            n,
            rows(f.gr[c], n, d * w),
            rows(&sites[c], cl, d * w).transpose(),
        );
        self.carry_log.clear();
        self.carry_log.extend_from_slice(&self.right_log[0]);
        normalize(&mut self.carry, cl, &mut self.carry_log);
        for k in (0..c).rev() {
            let (l, _, r) = shapes[k];
            outer(f.gr[k], &self.phi[k], &self.carry, n, d, r);
            scale_rows(f.gl[k], &self.left[k], l, &self.left_log[k], &self.carry_log);
            if k > 0 {
                self.carry.resize(n * l, 0.0);
                mm(
                    &mut self.carry,
                    n,
                    rows(f.gr[k], n, d * r),
                    rows(&sites[k], l, d * r).transpose(),
                );
                normalize(&mut self.carry, l, &mut self.carry_log);
            }
        }
    }

    /// `H_{c+1}[i, b] = sum_l delta[i, l] U[i, l, b]` carried right:
    /// `gl_k = H_k e^scale` (with `gr_k = phi_k (x) r_{k+1}`, kept by the forward pass),
    /// `H_{k+1} = sum_s phi_s (H_k A_k)`.
    fn backward_right(&mut self, chain: &Chain<'_>, n: usize, d: usize, head: &Head, gl: &mut [&mut [f32]]) {
        let (sites, shapes, c, nl) = (chain.sites, chain.shapes, chain.label_site, chain.labels);
        let n_sites = sites.len();
        let cr = shapes[c].2;
        self.carry.clear();
        self.carry.resize(n * cr, 0.0);
        for i in 0..n {
            let h = &mut self.carry[i * cr..(i + 1) * cr];
            for lab in 0..nl {
                let dl = head.delta[i * nl + lab];
                let ui = &head.u[(i * nl + lab) * cr..(i * nl + lab + 1) * cr];
                h.iter_mut().zip(ui).for_each(|(x, y)| *x += dl * y);
            }
        }
        self.carry_log.clear();
        self.carry_log.extend_from_slice(&self.left_log[c]);
        normalize(&mut self.carry, cr, &mut self.carry_log);
        for k in c + 1..n_sites {
            let j = k - c - 1;
            let (l, _, r) = shapes[k];
            scale_rows(gl[k], &self.carry, l, &self.carry_log, &self.right_log[j + 1]);
            if k + 1 < n_sites {
                self.wide.resize(n * d * r, 0.0);
                mm(
                    &mut self.wide,
                    n,
                    rows(&self.carry, n, l),
                    rows(&sites[k], l, d * r),
                );
                combine(&mut self.next, &self.wide, &self.phi[k], n, d, r);
                std::mem::swap(&mut self.carry, &mut self.next);
                normalize(&mut self.carry, r, &mut self.carry_log);
            }
        }
    }
}

/// One sample's loss for scores `f` and label `y`, added to `loss_sum` (term by term, the
/// running sum's order), and `delta = dLoss/df / batch`: softmax cross-entropy
/// (`p - onehot`) or the squared error (`f - onehot`).
fn loss_and_delta(loss: Loss, f: &[f64], y: usize, batch: usize, delta: &mut [f32], loss_sum: &mut f64) {
    match loss {
        Loss::CrossEntropy => {
            let m = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = f.iter().map(|v| (v - m).exp()).sum();
            *loss_sum += -(f[y] - m - z.ln());
            for (lab, o) in delta.iter_mut().enumerate() {
                let p = (f[lab] - m).exp() / z;
                *o = ((p - f64::from(u8::from(lab == y))) / batch as f64) as f32;
            }
        }
        Loss::Squared => {
            for (lab, o) in delta.iter_mut().enumerate() {
                let e = f[lab] - f64::from(u8::from(lab == y));
                *loss_sum += 0.5 * e * e;
                *o = (e / batch as f64) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows come out with norms in [1, 2), scaled exactly by a power of two, and
    /// `exp(log) * |row|` is the old norm; zero rows get `-inf`, huge and tiny rows are handled.
    #[test]
    fn normalize_keeps_the_norm_in_the_log() {
        let rows = [
            vec![3.0f32, 4.0],
            vec![1e-30, 0.0],
            vec![0.0, 0.0],
            vec![3e19, 4e19], // squared norm overflows f32
            vec![0.75, 0.0],
        ];
        for row in rows {
            let old = row.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            let mut v = row.clone();
            let mut log = [0.5f64];
            normalize(&mut v, 2, &mut log);
            let new = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            if old == 0.0 {
                assert_eq!(log[0], f64::NEG_INFINITY);
                continue;
            }
            assert!((1.0 - 1e-6..2.0).contains(&new), "{row:?}: norm {new}");
            let back = (log[0] - 0.5).exp() * new;
            assert!((back - old).abs() <= 1e-6 * old, "{row:?}: {back} vs {old}");
            let ratio = f64::from(row[0]) / f64::from(v[0]);
            let f32_range = (1e-18..1e18).contains(&row[0]);
            assert!(
                ratio.log2().fract().abs() < 1e-9 || !f32_range,
                "{row:?}: not a power of two"
            );
        }
    }
}
