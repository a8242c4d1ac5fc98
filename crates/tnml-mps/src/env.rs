//! Environments: per-sample contractions of one wing of the chain with the features. Evaluation
//! and the sweep's cache go through the two steps here. The gradient trainer's passes
//! (`gradient/pass.rs`) do the same contractions their own way, in `f32` on one slice of a
//! minibatch with a power-of-two rescaling per row and the outer products kept for the backward
//! pass; the CUDA engine mirrors those, step for step.
//!
//! ```text
//!   left environment l_k (sites < k)          right environment r_k (sites >= k)
//!   A_0 - A_1 - ... - A_{k-1} -= l_k          r_k =- A_k - ... - A_{N-1}
//!    |     |            |                             |            |
//!   phi   phi          phi                           phi          phi
//! ```
//!
//! With `phi_k[n, s]` the features of sample `n` at site `k` and `A_k[a, s, b]` the site tensor:
//!
//! ```text
//!   absorb_left:   l_{k+1}[n, b] = sum_{a,s} l_k[n, a] phi_k[n, s] A_k[a, s, b]
//!   absorb_right:  r_k[n, a]     = sum_{s,b} A_k[a, s, b] phi_k[n, s] r_{k+1}[n, b]
//! ```
//!
//! Each step is one GEMM of `N_T x (l d)` by `(l d) x r` (left: after the row-wise outer product
//! with `phi`; right: `N_T x r` by `r x (l d)`, then the row-wise contraction with `phi`), so it
//! costs `2 N_T l d r` flops. A "right" width may include the label (`r = L * right`), which is
//! how the label site is contracted.
//!
//! Rows are normalized by the callers that keep long chains ([`Wing`] keeps the logarithm of
//! the removed scale), so 196 or 784 sites neither underflow nor overflow.

use tnml_core::SiteTensor;

use crate::feature::SiteFeatures;
use crate::gemm::{gemm, gemm_bt, normalize_rows, row_contract_last, row_outer};

/// `l_{k+1}` from `l_k` (`n x left`), the site as `f32` row-major `[left, d, right]` and the
/// site's features (`n x d`): `n x right`.
pub(crate) fn absorb_left(
    env: &[f32],
    n: usize,
    site: &[f32],
    left: usize,
    phi: &[f32],
    d: usize,
    right: usize,
) -> Vec<f32> {
    debug_assert_eq!(site.len(), left * d * right);
    let x = row_outer(env, left, phi, d);
    gemm(&x, n, left * d, site, right)
}

/// `r_k` from `r_{k+1}` (`n x right`), the site as `f32` row-major `[left, d, right]` and the
/// site's features (`n x d`): `n x left`.
pub(crate) fn absorb_right(
    env: &[f32],
    n: usize,
    site: &[f32],
    left: usize,
    phi: &[f32],
    d: usize,
    right: usize,
) -> Vec<f32> {
    debug_assert_eq!(site.len(), left * d * right);
    let w = gemm_bt(env, n, right, site, left * d);
    row_contract_last(&w, left, phi, d)
}

/// A site as `f32` row-major data.
pub(crate) fn site_f32(site: &SiteTensor) -> Vec<f32> {
    site.data().iter().map(|&x| x as f32).collect()
}

/// A wing contracted site by site with per-sample normalization: `values` (`n x width`, rows of
/// unit norm) times `exp(log_scale[n])` is the exact environment.
#[derive(Debug, Clone)]
pub(crate) struct Wing {
    /// Normalized environments, `n x width`.
    pub values: Vec<f32>,
    /// `ln` of the removed positive factor per sample.
    pub log_scale: Vec<f64>,
    /// The open bond's dimension.
    pub width: usize,
}

impl Wing {
    /// The empty wing (bond dimension 1, every entry 1).
    pub fn trivial(n: usize) -> Self {
        Self {
            values: vec![1.0; n],
            log_scale: vec![0.0; n],
            width: 1,
        }
    }

    /// Adds site `k` on the right end of a left wing.
    pub fn push_left(&mut self, site: &SiteTensor, feats: &SiteFeatures, k: usize) {
        let (n, d) = (feats.samples, feats.dim);
        let right = site.right();
        self.values = absorb_left(
            &self.values,
            n,
            &site_f32(site),
            site.left(),
            &feats.sites[k],
            d,
            right,
        );
        self.rescale(right);
    }

    /// Adds site `k` on the left end of a right wing.
    pub fn push_right(&mut self, site: &SiteTensor, feats: &SiteFeatures, k: usize) {
        let (n, d) = (feats.samples, feats.dim);
        let left = site.left();
        self.values = absorb_right(
            &self.values,
            n,
            &site_f32(site),
            left,
            &feats.sites[k],
            d,
            site.right(),
        );
        self.rescale(left);
    }

    fn rescale(&mut self, width: usize) {
        self.width = width;
        self.log_scale
            .iter_mut()
            .zip(normalize_rows(&mut self.values, width))
            .for_each(|(a, b)| *a += b);
    }
}

/// Left wing of sites `0..upto` (none of them the label site).
pub(crate) fn left_wing(sites: &[SiteTensor], feats: &SiteFeatures, upto: usize) -> Wing {
    let mut w = Wing::trivial(feats.samples);
    for (k, site) in sites.iter().enumerate().take(upto) {
        w.push_left(site, feats, k);
    }
    w
}

/// Right wing of sites `from..N` (none of them the label site).
pub(crate) fn right_wing(sites: &[SiteTensor], feats: &SiteFeatures, from: usize) -> Wing {
    let mut w = Wing::trivial(feats.samples);
    for k in (from..sites.len()).rev() {
        w.push_right(&sites[k], feats, k);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::{embed_batch, FeatureMap};

    fn random_sites(n: usize, d: usize, bond: usize) -> Vec<SiteTensor> {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        (0..n)
            .map(|k| {
                let (l, r) = (if k == 0 { 1 } else { bond }, if k == n - 1 { 1 } else { bond });
                SiteTensor::new(l, d, r, (0..l * d * r).map(|_| next()).collect()).unwrap()
            })
            .collect()
    }

    /// Both wings meeting at any bond give the same number: the full contraction
    /// `<A, Phi(x)>` computed from the left and from the right.
    #[test]
    fn left_and_right_wings_agree_at_every_bond() {
        let (n_sites, d) = (6, 2);
        let sites = random_sites(n_sites, d, 3);
        let pixels: Vec<f32> = (0..3 * n_sites).map(|i| (i % 7) as f32 / 7.0).collect();
        let feats = embed_batch(FeatureMap::Trig, &pixels, n_sites).unwrap();
        let full_left = left_wing(&sites, &feats, n_sites);
        for bond in 0..=n_sites {
            let (l, r) = (left_wing(&sites, &feats, bond), right_wing(&sites, &feats, bond));
            assert_eq!(l.width, r.width);
            for i in 0..feats.samples {
                let dot: f64 = (0..l.width)
                    .map(|a| f64::from(l.values[i * l.width + a]) * f64::from(r.values[i * r.width + a]))
                    .sum();
                let value = dot * (l.log_scale[i] + r.log_scale[i]).exp();
                let want = f64::from(full_left.values[i]) * full_left.log_scale[i].exp();
                assert!(
                    (value - want).abs() <= 1e-5 * want.abs().max(1e-12),
                    "bond {bond} sample {i}: {value} vs {want}"
                );
            }
        }
    }
}
