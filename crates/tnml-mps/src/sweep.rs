//! The sweep trainer of Stoudenmire & Schwab (2016): DMRG-like two-site updates with the label
//! index moving with the sweep.
//!
//! One *sweep* is a left-to-right pass over bonds (0,1) .. (N-2,N-1) followed by a right-to-left
//! pass back. At bond (j, j+1):
//! 1. merge `B = A_j A_{j+1}` (the label sits on one of them);
//! 2. minimize the cost over `B` with the projected inputs (see [`crate::local`]): the paper's
//!    quadratic cost against one-hot targets (CGLS), or softmax cross-entropy (nonlinear CG with
//!    exact line searches on the logits);
//! 3. split `B` by a truncated SVD (`TruncParams`: max bond from the schedule, cutoff): going
//!    right, `A_j = U` (left-orthogonal) and `A_{j+1} = S V^T` takes the label; going left,
//!    `A_j = U S` takes the label and `A_{j+1} = V^T` (right-orthogonal);
//! 4. advance the cached environment of every sample by one site and normalize it.
//!
//! The model thus stays in mixed canonical form around the label, so each truncation is optimal
//! for the whole model. Environments are cached in `f32`, one slot per bond: slot `k` holds, for
//! every sample, the contraction of sites `< k` (left of the current bond) or `>= k` (right of
//! it), `N_T * D` floats per slot. Each normalized per sample, so long chains neither underflow
//! nor overflow, and the cost is that of the normalized projections (as in the original code).

use std::time::Instant;

use tnml_core::{truncated_svd, SiteTensor, TruncParams};

use crate::error::{MpsError, Result};
use crate::feature::SiteFeatures;
use crate::gemm::{gemm, gemm_bt, normalize_rows_in_place, row_contract_last, row_outer};
use crate::gradient::Loss;
use crate::local::{cg_softmax, cgls, LocalOp};
use crate::model::Decision;
use crate::model::{check_training_data, MpsClassifier};

/// Settings of the sweep trainer.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepConfig {
    /// Number of full sweeps (left-to-right and back).
    pub sweeps: usize,
    /// Maximum bond dimension per sweep; the last value repeats.
    pub max_bond: Vec<usize>,
    /// Relative discarded weight allowed at each SVD, in `[0, 1)`.
    pub cutoff: f64,
    /// CGLS iterations per bond (exact line searches along conjugate directions).
    pub cg_passes: usize,
    /// L2 penalty `lambda/2 ||B||^2` on the bond tensor.
    pub lambda: f64,
    /// CGLS iterations of the one-site refit of the label-carrying tensor after each truncated
    /// split (0 = off). The refit uses the new, normalized environment, so it repairs both the
    /// truncation loss and the change of per-sample scale before the next bond.
    pub refit_passes: usize,
    /// The local cost: the paper's quadratic cost against one-hot targets ([`Loss::Squared`],
    /// the model then predicts `argmax |f|`) or softmax cross-entropy ([`Loss::CrossEntropy`],
    /// solved by nonlinear CG with exact line searches; the model predicts `argmax f`).
    pub loss: Loss,
    /// Site where every sweep starts and ends (the label is moved there first):
    /// right to the end, back to the left end, and right again to this site. `None` starts at
    /// site 0 (the paper's plain left-right sweep). Ending in the middle keeps the model whose
    /// label sits where both wings carry information.
    pub turn_site: Option<usize>,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            sweeps: 3,
            max_bond: vec![10],
            cutoff: 1e-10,
            cg_passes: 3,
            lambda: 0.0,
            refit_passes: 1,
            loss: Loss::Squared,
            turn_site: None,
        }
    }
}

impl SweepConfig {
    /// The bond cap of sweep `s` (1-based); the schedule's last value repeats.
    pub fn max_bond_at(&self, sweep: usize) -> usize {
        let i = sweep.saturating_sub(1).min(self.max_bond.len().saturating_sub(1));
        self.max_bond.get(i).copied().unwrap_or(1)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// No sweeps, an empty schedule, a bond dimension of 0, a bad cutoff or lambda.
    pub fn validate(&self) -> Result<()> {
        if self.sweeps == 0 {
            return Err(MpsError::Config(
                "sweeps is 0: at least one sweep is needed".into(),
            ));
        }
        if self.max_bond.is_empty() {
            return Err(MpsError::Config("the bond-dimension schedule is empty".into()));
        }
        if let Some(i) = self.max_bond.iter().position(|&b| b == 0) {
            return Err(MpsError::Config(format!(
                "bond dimension 0 in the schedule (entry {i}): it must be at least 1"
            )));
        }
        TruncParams::max_bond(1).with_cutoff(self.cutoff).validate()?;
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return Err(MpsError::Config(format!(
                "lambda {} must be finite and >= 0",
                self.lambda
            )));
        }
        Ok(())
    }
}

/// Direction of a half sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bonds (0,1) to (N-2, N-1); the label moves right.
    LeftToRight,
    /// Bonds (N-2, N-1) to (0,1); the label moves left.
    RightToLeft,
}

impl Direction {
    /// "left-to-right" or "right-to-left".
    pub fn name(self) -> &'static str {
        match self {
            Self::LeftToRight => "left-to-right",
            Self::RightToLeft => "right-to-left",
        }
    }
}

/// What one bond update did.
#[derive(Debug, Clone, PartialEq)]
pub struct BondStep {
    /// Sweep (1-based).
    pub sweep: usize,
    /// Direction.
    pub direction: Direction,
    /// The bond (j + 1 for sites j, j+1).
    pub bond: usize,
    /// Updates done in this sweep so far (1-based) and in all.
    pub step: usize,
    /// Updates per sweep.
    pub steps_per_sweep: usize,
    /// Mean cost per sample after the update, `1/(2 N_T) sum (f - y)^2`.
    pub cost: f64,
    /// Training error of the model right after this update.
    pub train_error: f64,
    /// Bond dimension after the split.
    pub bond_dim: usize,
    /// Relative discarded weight of the split.
    pub discarded_weight: f64,
}

/// What one sweep did.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSummary {
    /// Sweep (1-based).
    pub sweep: usize,
    /// Bond cap used.
    pub max_bond: usize,
    /// Cost after the last update.
    pub cost: f64,
    /// Training error after the last update.
    pub train_error: f64,
    /// Bond dimensions at the end of the sweep.
    pub bond_dims: Vec<usize>,
    /// Wall time of the sweep.
    pub seconds: f64,
    /// Floating-point operations of the local solves and environment updates.
    pub flops: f64,
}

/// Receives progress; measurement stays out of the sweep loop.
pub trait SweepObserver {
    /// After every bond update.
    fn on_bond(&mut self, _step: &BondStep) {}
    /// After every sweep, with the model as it now is.
    fn on_sweep(&mut self, _summary: &SweepSummary, _model: &MpsClassifier) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl SweepObserver for Silent {}

/// Trains `model` on `feats` / `labels` by sweeps. The label is first moved (exactly) to the
/// turn site and the model put in canonical form around it. The model's decision rule is set
/// to fit the loss ([`Loss::decision`]).
///
/// On a non-finite cost the update is not applied and [`MpsError::NonFiniteCost`] is returned:
/// the model is left at its last good state.
///
/// # Errors
/// Invalid config, features or labels that do not fit the model, a non-finite cost.
pub fn train_sweeps(
    model: &mut MpsClassifier,
    feats: &SiteFeatures,
    labels: &[usize],
    config: &SweepConfig,
    observer: &mut dyn SweepObserver,
) -> Result<Vec<SweepSummary>> {
    config.validate()?;
    check_training_data(model, feats, labels)?;
    if model.num_sites() < 2 {
        return Err(MpsError::Shape("a sweep needs at least 2 sites".into()));
    }
    let start = config.turn_site.unwrap_or(0);
    if start >= model.num_sites() {
        return Err(MpsError::Config(format!(
            "turn site {start} is outside 0..{}",
            model.num_sites()
        )));
    }
    move_label_to(model, start)?;
    model.set_decision(config.loss.decision());
    let mut state = State::new(model, feats, labels);
    let mut summaries = Vec::with_capacity(config.sweeps);
    let n_bonds = model.num_sites() - 1;
    for sweep in 1..=config.sweeps {
        let t0 = Instant::now();
        let params = TruncParams::max_bond(config.max_bond_at(sweep)).with_cutoff(config.cutoff);
        let mut flops = 0.0;
        let mut last = (0.0, 0.0);
        let c = model.label_site;
        let order: Vec<(Direction, usize)> = (c..n_bonds)
            .map(|j| (Direction::LeftToRight, j))
            .chain((0..n_bonds).rev().map(|j| (Direction::RightToLeft, j)))
            .chain((0..c).map(|j| (Direction::LeftToRight, j)))
            .collect();
        for (i, &(dir, j)) in order.iter().enumerate() {
            let out = state.update_bond(model, j, dir, config, &params, sweep)?;
            flops += out.flops;
            last = (out.cost, out.train_error);
            observer.on_bond(&BondStep {
                sweep,
                direction: dir,
                bond: j + 1,
                step: i + 1,
                steps_per_sweep: order.len(),
                cost: out.cost,
                train_error: out.train_error,
                bond_dim: out.bond_dim,
                discarded_weight: out.discarded_weight,
            });
        }
        let summary = SweepSummary {
            sweep,
            max_bond: params.max_bond,
            cost: last.0,
            train_error: last.1,
            bond_dims: model.bond_dims(),
            seconds: t0.elapsed().as_secs_f64(),
            flops,
        };
        observer.on_sweep(&summary, model);
        summaries.push(summary);
    }
    Ok(summaries)
}

/// Puts the model in mixed canonical form with the label on `target`: a QR sweep around the
/// current label site, then exact SVD moves of the label (nothing is truncated beyond rounding
/// noise). The function `f^l(x)` is unchanged.
///
/// # Errors
/// A target outside the chain.
pub(crate) fn move_label_to(model: &mut MpsClassifier, target: usize) -> Result<()> {
    if target >= model.num_sites() {
        return Err(MpsError::Shape(format!(
            "site {target} is outside 0..{}",
            model.num_sites()
        )));
    }
    let mut mps = model.to_mps()?;
    mps.canonicalize(model.label_site)?;
    model.sites = mps.sites().to_vec();
    while model.label_site > target {
        let j = model.label_site - 1;
        let b = merge(model, j, Direction::RightToLeft);
        split(model, j, &b, Direction::RightToLeft, &TruncParams::exact())?;
    }
    while model.label_site < target {
        let j = model.label_site;
        let b = merge(model, j, Direction::LeftToRight);
        split(model, j, &b, Direction::LeftToRight, &TruncParams::exact())?;
    }
    Ok(())
}

/// `B = A_j A_{j+1}` in the layout `[a, s, t, l, b]` (f32), with `a`, `b` the outer bonds.
fn merge(model: &MpsClassifier, j: usize, dir: Direction) -> Vec<f32> {
    let (aj, ak) = (&model.sites[j], &model.sites[j + 1]);
    let (left, right, mid) = (aj.left(), ak.right(), aj.right());
    let d = model.feature_map.dim();
    let big_l = model.num_labels;
    let m = gemm(
        &model.site_f32(j),
        aj.len() / mid,
        mid,
        &model.site_f32(j + 1),
        ak.len() / mid,
    );
    match dir {
        // label on the right site already: [a, s, (t, l), b] is [a, s, t, l, b]
        Direction::RightToLeft => m,
        // label on the left site: [a, (s, l), t, b] -> [a, s, t, l, b]
        Direction::LeftToRight => {
            let mut out = vec![0f32; m.len()];
            for a in 0..left {
                for s in 0..d {
                    for l in 0..big_l {
                        for t in 0..d {
                            let src = (((a * d + s) * big_l + l) * d + t) * right;
                            let dst = (((a * d + s) * d + t) * big_l + l) * right;
                            out[dst..dst + right].copy_from_slice(&m[src..src + right]);
                        }
                    }
                }
            }
            out
        }
    }
}

/// Splits `B` (layout `[a, s, t, l, b]`) back into sites `j`, `j+1`, moving the label in the
/// direction of the sweep. Returns `(kept, discarded weight)`.
fn split(
    model: &mut MpsClassifier,
    j: usize,
    b: &[f32],
    dir: Direction,
    params: &TruncParams,
) -> Result<(usize, f64)> {
    let (left, right) = (model.sites[j].left(), model.sites[j + 1].right());
    let d = model.feature_map.dim();
    let big_l = model.num_labels;
    let (rows, cols, data): (usize, usize, Vec<f64>) = match dir {
        Direction::LeftToRight => (
            left * d,
            d * big_l * right,
            b.iter().map(|&x| f64::from(x)).collect(),
        ),
        Direction::RightToLeft => {
            // [a, s, t, l, b] -> [a, s, l, t, b]
            let mut out = vec![0f64; b.len()];
            for a in 0..left {
                for s in 0..d {
                    for t in 0..d {
                        for l in 0..big_l {
                            let src = (((a * d + s) * d + t) * big_l + l) * right;
                            let dst = (((a * d + s) * big_l + l) * d + t) * right;
                            for r in 0..right {
                                out[dst + r] = f64::from(b[src + r]);
                            }
                        }
                    }
                }
            }
            (left * d * big_l, d * right, out)
        }
    };
    let m = tnml_core::faer::MatRef::from_row_major_slice(&data, rows, cols);
    let svd = truncated_svd(m, params)?;
    let k = svd.s.len();
    let (mut u, mut vt) = (vec![0f64; rows * k], vec![0f64; k * cols]);
    for i in 0..rows {
        for c in 0..k {
            u[i * k + c] = svd.u[(i, c)];
        }
    }
    for c in 0..k {
        for i in 0..cols {
            vt[c * cols + i] = svd.vt[(c, i)];
        }
    }
    match dir {
        Direction::LeftToRight => {
            for c in 0..k {
                vt[c * cols..(c + 1) * cols]
                    .iter_mut()
                    .for_each(|x| *x *= svd.s[c]);
            }
            model.sites[j] = SiteTensor::new(left, d, k, u)?;
            model.sites[j + 1] = SiteTensor::new(k, d * big_l, right, vt)?;
            model.label_site = j + 1;
        }
        Direction::RightToLeft => {
            for row in u.chunks_mut(k) {
                row.iter_mut().zip(&svd.s).for_each(|(x, s)| *x *= s);
            }
            model.sites[j] = SiteTensor::new(left, d * big_l, k, u)?;
            model.sites[j + 1] = SiteTensor::new(k, d, right, vt)?;
            model.label_site = j;
        }
    }
    Ok((k, svd.truncation.discarded_weight))
}

/// Wrong predictions of scores `f` (`n x L`) under `decision`.
fn count_wrong(f: &[f32], labels: &[usize], big_l: usize, decision: Decision) -> usize {
    f.chunks_exact(big_l)
        .zip(labels)
        .filter(|(r, &l)| decision.pick(r) != l)
        .count()
}

struct BondOutcome {
    cost: f64,
    train_error: f64,
    bond_dim: usize,
    discarded_weight: f64,
    flops: f64,
}

/// Cached environments and targets.
struct State<'a> {
    feats: &'a SiteFeatures,
    labels: &'a [usize],
    one_hot: Vec<f32>,
    /// slot k: per-sample environment of sites < k (left) or >= k (right), `n x width[k]`.
    envs: Vec<Vec<f32>>,
    widths: Vec<usize>,
}

impl<'a> State<'a> {
    fn new(model: &MpsClassifier, feats: &'a SiteFeatures, labels: &'a [usize]) -> Self {
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
        let x = row_outer(&self.envs[k - 1], left, &self.feats.sites[k - 1], d);
        let mut v = gemm(&x, n, left * d, &model.site_f32(k - 1), right);
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
        let w = gemm_bt(&self.envs[k + 1], n, right, &model.site_f32(k), left * d);
        let mut v = row_contract_last(&w, left, &self.feats.sites[k], d);
        normalize_rows_in_place(&mut v, left);
        self.envs[k] = v;
        self.widths[k] = left;
        2.0 * (n * left * d * right) as f64
    }

    fn update_bond(
        &mut self,
        model: &mut MpsClassifier,
        j: usize,
        dir: Direction,
        config: &SweepConfig,
        params: &TruncParams,
        sweep: usize,
    ) -> Result<BondOutcome> {
        let n = self.feats.samples;
        let d = self.feats.dim;
        let big_l = model.num_labels;
        let (left, right) = (model.sites[j].left(), model.sites[j + 1].right());
        debug_assert_eq!(self.widths[j], left);
        debug_assert_eq!(self.widths[j + 2], right);
        let x1 = row_outer(&self.envs[j], left, &self.feats.sites[j], d);
        let x = row_outer(&x1, left * d, &self.feats.sites[j + 1], d);
        let op = LocalOp {
            x: &x,
            r: &self.envs[j + 2],
            n,
            k: left * d * d,
            labels: big_l,
            right,
        };
        let mut b = merge(model, j, dir);
        let (cost, wrong, mut flops) = self.solve(&op, &mut b, config.cg_passes, config);
        if !cost.is_finite() || b.iter().any(|v| !v.is_finite()) {
            return Err(MpsError::NonFiniteCost {
                sweep,
                bond: j + 1,
                direction: dir.name(),
                value: cost,
            });
        }
        let (kept, discarded_weight) = split(model, j, &b, dir, params)?;
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
            train_error: wrong as f64 / n.max(1) as f64,
            bond_dim: kept,
            discarded_weight,
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
        let n = self.feats.samples;
        let d = self.feats.dim;
        let big_l = model.num_labels;
        let site = match dir {
            Direction::LeftToRight => j + 1,
            Direction::RightToLeft => j,
        };
        let (left, right) = (model.sites[site].left(), model.sites[site].right());
        let x = row_outer(&self.envs[site], left, &self.feats.sites[site], d);
        let op = LocalOp {
            x: &x,
            r: &self.envs[site + 1],
            n,
            k: left * d,
            labels: big_l,
            right,
        };
        let mut b = model.site_f32(site);
        let (cost, wrong, flops) = self.solve(&op, &mut b, config.refit_passes, config);
        if cost.is_finite() && b.iter().all(|v| v.is_finite()) {
            model.sites[site] =
                SiteTensor::new(left, d * big_l, right, b.iter().map(|&v| f64::from(v)).collect())?;
        }
        Ok((cost, wrong, flops))
    }

    /// Minimizes the configured loss over `b` for the bond's linear map `op` by `passes`
    /// iterations. Returns (mean cost per sample, wrong predictions, flops).
    fn solve(
        &self,
        op: &LocalOp<'_>,
        b: &mut [f32],
        passes: usize,
        config: &SweepConfig,
    ) -> (f64, usize, f64) {
        let n = self.labels.len().max(1) as f64;
        let big_l = op.labels;
        match config.loss {
            Loss::Squared => {
                let (residual, flops) = cgls(op, b, &self.one_hot, passes, config.lambda);
                let cost = 0.5
                    * residual
                        .iter()
                        .map(|r| f64::from(*r) * f64::from(*r))
                        .sum::<f64>()
                    / n;
                // f = Y - residual
                let f: Vec<f32> = self.one_hot.iter().zip(&residual).map(|(y, r)| y - r).collect();
                (
                    cost,
                    count_wrong(&f, self.labels, big_l, Decision::Magnitude),
                    flops,
                )
            }
            Loss::CrossEntropy => {
                let (z, loss, flops) = cg_softmax(op, b, self.labels, passes, config.lambda);
                (
                    loss / n,
                    count_wrong(&z, self.labels, big_l, Decision::Signed),
                    flops,
                )
            }
        }
    }
}
