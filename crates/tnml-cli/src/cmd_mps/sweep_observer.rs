//! What `tnml mps train` (sweep trainer) does between bond updates and after each sweep: the
//! progress bar, the line per sweep, the test / validation errors (each rank scores its shard,
//! the counts are summed) and rank 0's checkpoint.

use std::ops::ControlFlow;
use std::time::Instant;

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tnml_mps::collective::sharded_error_rate;
use tnml_mps::{BondStep, MpsClassifier, SiteFeatures, SweepObserver, SweepSummary};

use super::save::{checkpoint, save_failed};
use crate::cluster::Cluster;
use crate::progress::step_bar;
use crate::run_dir::RunDir;

/// One line of `metrics.jsonl`: one sweep.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SweepRecord {
    pub sweep: usize,
    pub max_bond: usize,
    pub cutoff: f64,
    /// Sum over the sweep's splits of the relative discarded weight.
    pub discarded_weight: f64,
    pub cost: f64,
    pub train_error: f64,
    pub test_error: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_error: Option<f64>,
    pub max_bond_dim: usize,
    pub params: usize,
    pub seconds: f64,
    pub gflops: f64,
}

/// This rank's evaluation images (its shard of them).
pub(super) struct EvalShards<'a> {
    pub test: &'a SiteFeatures,
    pub test_labels: &'a [usize],
    pub validation: Option<(&'a SiteFeatures, &'a [usize])>,
}

pub(super) struct CliObserver<'a> {
    bar: ProgressBar,
    eval: EvalShards<'a>,
    cluster: &'a Cluster,
    /// Rank 0's run directory (`None` on the other ranks).
    run: Option<&'a mut RunDir>,
    /// Sweeps done before this process started (`--resume`: the checkpoint's, which may be one
    /// more than the records hold): sweep `s` of the trainer is sweep `s + offset` of the run.
    offset: usize,
    pub records: Vec<SweepRecord>,
    pub failure: Option<anyhow::Error>,
    /// When the last progress line went to a log (stderr not a terminal: the bar is hidden).
    last_log: Instant,
}

/// Seconds between progress lines when the bar is hidden (output to a file).
const LOG_EVERY_S: f64 = 60.0;

impl<'a> CliObserver<'a> {
    pub fn new(
        eval: EvalShards<'a>,
        cluster: &'a Cluster,
        run: Option<&'a mut RunDir>,
        records: Vec<SweepRecord>,
        done: usize,
    ) -> Self {
        let bar = step_bar(cluster);
        Self {
            bar,
            eval,
            cluster,
            run,
            offset: done,
            records,
            failure: None,
            last_log: Instant::now(),
        }
    }

    pub fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl SweepObserver for CliObserver<'_> {
    fn on_bond(&mut self, s: &BondStep) -> ControlFlow<()> {
        if !self.cluster.is_root() {
            return ControlFlow::Continue(());
        }
        let sweep = s.sweep + self.offset;
        if s.step == 1 {
            self.bar.reset();
            self.bar.set_length(s.steps_per_sweep as u64);
        }
        self.bar.set_position(s.step as u64);
        if self.bar.is_hidden() && self.last_log.elapsed().as_secs_f64() >= LOG_EVERY_S {
            self.last_log = Instant::now();
            eprintln!(
                "sweep {sweep} step {}/{} bond {} dim {} cost {:.5} train error {:.4}",
                s.step, s.steps_per_sweep, s.bond, s.truncation.kept, s.cost, s.train_error
            );
        }
        self.bar.set_message(format!(
            "sweep {sweep} {} bond {:>3} dim {:>3} cost {:.4} train err {:.4}",
            if s.direction == tnml_mps::Direction::LeftToRight {
                "->"
            } else {
                "<-"
            },
            s.bond,
            s.truncation.kept,
            s.cost,
            s.train_error
        ));
        ControlFlow::Continue(())
    }

    fn on_sweep(&mut self, s: &SweepSummary, model: &MpsClassifier) -> ControlFlow<()> {
        let comm = self.cluster.comm();
        let test_error =
            sharded_error_rate(comm, model, self.eval.test, self.eval.test_labels).unwrap_or(f64::NAN);
        let validation_error = self
            .eval
            .validation
            .map(|(f, l)| sharded_error_rate(comm, model, f, l).unwrap_or(f64::NAN));
        let rec = SweepRecord {
            sweep: s.sweep + self.offset,
            max_bond: s.trunc.max_bond,
            cutoff: s.trunc.cutoff,
            discarded_weight: s.discarded_weight(),
            cost: s.cost,
            train_error: s.train_error,
            test_error,
            validation_error,
            max_bond_dim: s.bond_dims.iter().copied().max().unwrap_or(1),
            params: model.num_params(),
            seconds: s.seconds,
            gflops: s.flops / s.seconds.max(1e-9) / 1e9,
        };
        let Some(run) = self.run.as_deref_mut() else {
            self.records.push(rec);
            return ControlFlow::Continue(());
        };
        let valid = rec
            .validation_error
            .map(|v| format!(", validation error {v:.4}"))
            .unwrap_or_default();
        let ranks = if self.cluster.size() > 1 {
            format!(" on {} ranks (GFLOP/s of rank 0)", self.cluster.size())
        } else {
            String::new()
        };
        let line = format!(
            "sweep {}: train error {:.4}{valid}, test error {:.4}, cost {:.5}, max bond {} (cap {}), discarded weight {:.3e}, {} params, {:.1} s{ranks} ({:.1} GFLOP/s)",
            rec.sweep, rec.train_error, rec.test_error, rec.cost, rec.max_bond_dim, rec.max_bond, rec.discarded_weight, rec.params, rec.seconds, rec.gflops
        );
        // printed even when the bar is hidden (not a terminal): logs keep the per-sweep line
        self.bar.suspend(|| eprintln!("{line}"));
        let saved = self.records.last().map(|r| r.sweep);
        let step = rec.sweep;
        self.records.push(rec);
        if let Err(e) = checkpoint(run, model, self.records.last().expect("just pushed"), step) {
            self.failure = Some(save_failed(e, run, "sweep", saved));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}
