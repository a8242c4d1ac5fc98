//! The sweep's environment cache and one bond update.
//!
//! Environments are cached in `f32`, one slot per bond: slot `k` holds, for every sample, the
//! contraction of sites `< k` (left of the current bond) or `>= k` (right of it), `N_T * D`
//! floats per slot, each row normalized (the cost is that of the normalized projections, as in
//! the original code). They are advanced by [`crate::env`]'s steps.

use tnml_core::{SiteTensor, TruncParams, Truncation};

use super::config::SweepConfig;
use crate::collective::{sum_count, sum_scalar, sync_site, Collective};
use crate::env::{absorb_left, absorb_right};
use crate::error::{MpsError, Result};
use crate::feature::SiteFeatures;
use crate::gemm::normalize_rows_in_place;
use crate::local::{cg_softmax, cgls, LocalOp};
use crate::model::label::Direction;
use crate::model::{Decision, Loss, MpsClassifier};

/// Wrong predictions of scores `f` (`n x L`) under `decision`.
fn count_wrong(f: &[f32], labels: &[usize], big_l: usize, decision: Decision) -> usize {
    f.chunks_exact(big_l)
        .zip(labels)
        .filter(|(r, &l)| decision.pick(r) != l)
        .count()
}

pub(super) struct BondOutcome {
    pub cost: f64,
    pub train_error: f64,
    pub truncation: Truncation,
    pub flops: f64,
}

/// Cached environments and targets of this rank's samples.
pub(super) struct EnvCache<'a> {
    feats: &'a SiteFeatures,
    labels: &'a [usize],
    /// The ranks sharing the training set ([`crate::collective`]).
    comm: &'a dyn Collective,
    /// Training samples over all ranks.
    total: usize,
    one_hot: Vec<f32>,
    /// slot k: per-sample environment of sites < k (left) or >= k (right), `n x width[k]`.
    envs: Vec<Vec<f32>>,
    widths: Vec<usize>,
}

impl<'a> EnvCache<'a> {
    pub fn new(
        model: &MpsClassifier,
        feats: &'a SiteFeatures,
        labels: &'a [usize],
        comm: &'a dyn Collective,
    ) -> Self {
        let n = feats.samples;
        let big_l = model.num_labels;
        let mut one_hot = vec![0f32; n * big_l];
        for (i, &l) in labels.iter().enumerate() {
            one_hot[i * big_l + l] = 1.0;
        }
        let slots = model.num_sites() + 1;
        let mut s = Self {
            feats,
            labels,
            comm,
            total: sum_count(comm, n),
            one_hot,
            envs: vec![Vec::new(); slots],
            widths: vec![1; slots],
        };
        s.envs[0] = vec![1.0; n];
        s.envs[slots - 1] = vec![1.0; n];
        let c = model.label_site;
        for k in 1..=c {
            s.extend_left(model, k);
        }
        for k in (c + 1..slots - 1).rev() {
            s.extend_right(model, k);
        }
        s
    }

    /// slot k (left env of sites < k) from slot k-1 and site k-1.
    fn extend_left(&mut self, model: &MpsClassifier, k: usize) -> f64 {
        let n = self.feats.samples;
        let d = self.feats.dim;
        let site = &model.sites[k - 1];
        let (left, right) = (site.left(), site.right());
        let mut v = absorb_left(
            &self.envs[k - 1],
            n,
            &model.site_f32(k - 1),
            left,
            &self.feats.sites[k - 1],
            d,
            right,
        );
        normalize_rows_in_place(&mut v, right);
        self.envs[k] = v;
        self.widths[k] = right;
        2.0 * (n * left * d * right) as f64
    }

    /// slot k (right env of sites >= k) from slot k+1 and site k.
    fn extend_right(&mut self, model: &MpsClassifier, k: usize) -> f64 {
        let n = self.feats.samples;
        let d = self.feats.dim;
        let site = &model.sites[k];
        let (left, right) = (site.left(), site.right());
        let mut v = absorb_right(
            &self.envs[k + 1],
            n,
            &model.site_f32(k),
            left,
            &self.feats.sites[k],
            d,
            right,
        );
        normalize_rows_in_place(&mut v, left);
        self.envs[k] = v;
        self.widths[k] = left;
        2.0 * (n * left * d * right) as f64
    }

    pub fn update_bond(
        &mut self,
        model: &mut MpsClassifier,
        j: usize,
        dir: Direction,
        config: &SweepConfig,
        params: &TruncParams,
        sweep: usize,
    ) -> Result<BondOutcome> {
        let d = self.feats.dim;
        let big_l = model.num_labels;
        let (left, right) = (model.sites[j].left(), model.sites[j + 1].right());
        debug_assert_eq!(self.widths[j], left);
        debug_assert_eq!(self.widths[j + 2], right);
        let op = LocalOp::sites(
            &self.envs[j],
            left,
            &[&self.feats.sites[j], &self.feats.sites[j + 1]],
            d,
            &self.envs[j + 2],
            right,
            big_l,
            self.comm,
        );
        let mut b = model.merge_bond(j, dir);
        let (cost, wrong, mut flops) = self.solve(&op, &mut b, config.cg_passes, config);
        if !cost.is_finite() || b.iter().any(|v| !v.is_finite()) {
            return Err(MpsError::NonFiniteCost {
                sweep,
                bond: j + 1,
                direction: dir.name(),
                value: cost,
            });
        }
        let truncation = model.split_bond(j, &b, dir, params)?;
        // every rank split the same B; rank 0's factors are the model's (crate::collective)
        sync_site(self.comm, model, j)?;
        sync_site(self.comm, model, j + 1)?;
        flops += match dir {
            Direction::LeftToRight => self.extend_left(model, j + 1),
            Direction::RightToLeft => self.extend_right(model, j + 1),
        };
        let (mut cost, mut wrong) = (cost, wrong);
        if config.refit_passes > 0 {
            let (c, w, f) = self.refit(model, j, dir, config)?;
            if !c.is_finite() {
                return Err(MpsError::NonFiniteCost {
                    sweep,
                    bond: j + 1,
                    direction: dir.name(),
                    value: c,
                });
            }
            (cost, wrong, flops) = (c, w, flops + f);
        }
        Ok(BondOutcome {
            cost,
            train_error: wrong as f64 / self.total.max(1) as f64,
            truncation,
            flops,
        })
    }

    /// One-site refit of the label-carrying tensor after a split, with the new environment.
    /// Returns (cost, wrong predictions, flops).
    fn refit(
        &mut self,
        model: &mut MpsClassifier,
        j: usize,
        dir: Direction,
        config: &SweepConfig,
    ) -> Result<(f64, usize, f64)> {
        let d = self.feats.dim;
        let big_l = model.num_labels;
        let site = match dir {
            Direction::LeftToRight => j + 1,
            Direction::RightToLeft => j,
        };
        let (left, right) = (model.sites[site].left(), model.sites[site].right());
        let op = LocalOp::sites(
            &self.envs[site],
            left,
            &[&self.feats.sites[site]],
            d,
            &self.envs[site + 1],
            right,
            big_l,
            self.comm,
        );
        let mut b = model.site_f32(site);
        let (cost, wrong, flops) = self.solve(&op, &mut b, config.refit_passes, config);
        if cost.is_finite() && b.iter().all(|v| v.is_finite()) {
            model.sites[site] =
                SiteTensor::new(left, d * big_l, right, b.iter().map(|&v| f64::from(v)).collect())?;
            sync_site(self.comm, model, site)?;
        }
        Ok((cost, wrong, flops))
    }

    /// Minimizes the configured loss over `b` for the bond's linear map `op` by `passes`
    /// iterations. Returns (mean cost per sample, wrong predictions, flops), the cost and the
    /// count over all ranks' samples.
    fn solve(
        &self,
        op: &LocalOp<'_>,
        b: &mut [f32],
        passes: usize,
        config: &SweepConfig,
    ) -> (f64, usize, f64) {
        let n = self.total.max(1) as f64;
        let big_l = op.labels;
        match config.loss {
            Loss::Squared => {
                let (residual, flops) = cgls(op, b, &self.one_hot, passes, config.lambda);
                let cost =
                    0.5 * sum_scalar(
                        self.comm,
                        residual
                            .iter()
                            .map(|r| f64::from(*r) * f64::from(*r))
                            .sum::<f64>(),
                    ) / n;
                // f = Y - residual
                let f: Vec<f32> = self.one_hot.iter().zip(&residual).map(|(y, r)| y - r).collect();
                (
                    cost,
                    sum_count(
                        self.comm,
                        count_wrong(&f, self.labels, big_l, Decision::Magnitude),
                    ),
                    flops,
                )
            }
            Loss::CrossEntropy => {
                let (z, loss, flops) = cg_softmax(op, b, self.labels, passes, config.lambda);
                (
                    loss / n,
                    sum_count(self.comm, count_wrong(&z, self.labels, big_l, Decision::Signed)),
                    flops,
                )
            }
        }
    }
}
