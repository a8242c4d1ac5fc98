//! `tnml mps train` with the sweep trainer: load, start from the class means, sweep with a
//! line per sweep and a checkpoint after each, optionally refit the core at the turn site.

use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tnml_data::Split;
use tnml_mps::{
    embed_batch, train_sweeps, BondStep, FeatureMap, MpsClassifier, SiteFeatures, SweepConfig, SweepObserver,
    SweepSummary,
};

use super::options::{load_pixels, LossArg, MapArg, MpsData, TrainerArg};
use super::project::{refit_core, RefitArg, RefitData};
use super::save::{checkpoint, finish_training, save_failed, truncation_json};
use crate::args::{Limits, Seed, Threads};
use crate::run_dir::{atomic_write, RunDir};

/// Arguments of `tnml mps train`.
#[derive(Debug, Args, Serialize)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: MpsData,
    /// Maximum bond dimension per sweep, comma separated; the last value repeats (e.g. 10 or 4,10,20).
    #[arg(
        long = "max-bond",
        alias = "bond",
        value_delimiter = ',',
        default_value = "10"
    )]
    pub max_bond: Vec<usize>,
    /// Relative discarded weight allowed at each SVD (sum of dropped s^2 / sum of s^2).
    #[arg(long, default_value_t = 1e-10)]
    pub cutoff: f64,
    /// Number of sweeps (each left-to-right and back).
    #[arg(long, default_value_t = 3)]
    pub sweeps: usize,
    /// Conjugate-gradient iterations per bond.
    #[arg(long, default_value_t = 3)]
    pub cg_passes: usize,
    /// CG iterations of the one-site refit after each truncated split (0 = off).
    #[arg(long, default_value_t = 1)]
    pub refit_passes: usize,
    /// L2 penalty on the bond tensor.
    #[arg(long, default_value_t = 0.0)]
    pub lambda: f64,
    /// Feature map.
    #[arg(long, value_enum, default_value = "trig")]
    pub feature_map: MapArg,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: Limits,
    /// Hold out the last N images of the training subset: they are not trained on, and every
    /// sweep reports their error (to choose options such as --lambda without the test set).
    #[arg(long)]
    pub validation: Option<usize>,
    #[command(flatten)]
    #[serde(flatten)]
    pub seed: Seed,
    #[command(flatten)]
    #[serde(flatten)]
    pub threads: Threads,
    /// Site where each sweep starts and ends (default: the middle). 0 gives the paper's plain
    /// left-to-right-and-back sweep; ending in the middle keeps the more expressive model.
    #[arg(long)]
    pub turn_site: Option<usize>,
    /// After the sweeps, refit the core at the turn site on the reduced features (as `tnml mps
    /// project --refit`): `softmax` fits it as logits (penalty chosen on a validation split
    /// unless --final-refit-lambda is given) and saves model-refit.safetensors next to the
    /// swept model.
    #[arg(long, value_enum)]
    pub final_refit: Option<RefitArg>,
    /// Penalty of --final-refit.
    #[arg(long)]
    pub final_refit_lambda: Option<f64>,
    /// Trainer: sweep (DMRG-like, adaptive bond) or gradient (Adam on all cores, fixed bond).
    #[arg(long, value_enum, default_value = "sweep")]
    pub trainer: TrainerArg,
    /// Gradient trainer: epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Gradient trainer: minibatch size.
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
    /// Gradient trainer: Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Loss. Sweep trainer: squared (the paper's quadratic cost; predicts argmax |f|, the
    /// default) or cross-entropy (softmax logits, predicts argmax f). Gradient trainer:
    /// cross-entropy by default.
    #[arg(long, value_enum)]
    pub loss: Option<LossArg>,
    /// Run directory (default: runs/mps-train-<UTC time>).
    #[arg(long)]
    #[serde(skip)]
    pub out: Option<PathBuf>,
    /// The options given on the command line (clap ids), filled in by `main`: options of one
    /// trainer given with the other are refused, not ignored.
    #[arg(skip)]
    #[serde(skip)]
    pub explicit: Vec<String>,
}

/// Options only the sweep trainer reads.
const SWEEP_ONLY: [&str; 8] = [
    "sweeps",
    "cutoff",
    "cg_passes",
    "refit_passes",
    "lambda",
    "validation",
    "final_refit",
    "final_refit_lambda",
];
/// Options only the gradient trainer reads.
const GRADIENT_ONLY: [&str; 3] = ["epochs", "batch_size", "lr"];

impl TrainArgs {
    /// Refuses options of the trainer that is not running (they would be recorded in
    /// config.json and silently not applied).
    ///
    /// # Errors
    /// The first such option, with the trainer it belongs to.
    pub fn check_trainer_options(&self) -> Result<()> {
        let (foreign, owner) = match self.trainer {
            TrainerArg::Sweep => (&GRADIENT_ONLY[..], "--trainer gradient"),
            TrainerArg::Gradient => (&SWEEP_ONLY[..], "the sweep trainer"),
        };
        if let Some(id) = self.explicit.iter().find(|id| foreign.contains(&id.as_str())) {
            bail!(
                "--{} applies to {owner}, not to --trainer {}",
                id.replace('_', "-"),
                match self.trainer {
                    TrainerArg::Sweep => "sweep",
                    TrainerArg::Gradient => "gradient",
                }
            );
        }
        if self.trainer == TrainerArg::Gradient && self.max_bond.len() > 1 {
            bail!(
                "--max-bond {:?}: the gradient trainer trains at one fixed bond dimension; give one value",
                self.max_bond
            );
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct SweepRecord {
    sweep: usize,
    max_bond: usize,
    cutoff: f64,
    /// Sum over the sweep's splits of the relative discarded weight.
    discarded_weight: f64,
    cost: f64,
    train_error: f64,
    test_error: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    validation_error: Option<f64>,
    max_bond_dim: usize,
    params: usize,
    seconds: f64,
    gflops: f64,
}

struct CliObserver<'a> {
    bar: ProgressBar,
    test: &'a SiteFeatures,
    test_labels: &'a [usize],
    validation: Option<(&'a SiteFeatures, &'a [usize])>,
    run: &'a mut RunDir,
    records: Vec<SweepRecord>,
    failure: Option<anyhow::Error>,
    /// When the last progress line went to a log (stderr not a terminal: the bar is hidden).
    last_log: Instant,
}

/// Seconds between progress lines when the bar is hidden (output to a file).
const LOG_EVERY_S: f64 = 60.0;

impl SweepObserver for CliObserver<'_> {
    fn on_bond(&mut self, s: &BondStep) -> ControlFlow<()> {
        if s.step == 1 {
            self.bar.reset();
            self.bar.set_length(s.steps_per_sweep as u64);
        }
        self.bar.set_position(s.step as u64);
        if self.bar.is_hidden() && self.last_log.elapsed().as_secs_f64() >= LOG_EVERY_S {
            self.last_log = Instant::now();
            eprintln!(
                "sweep {} step {}/{} bond {} dim {} cost {:.5} train error {:.4}",
                s.sweep, s.step, s.steps_per_sweep, s.bond, s.truncation.kept, s.cost, s.train_error
            );
        }
        self.bar.set_message(format!(
            "sweep {} {} bond {:>3} dim {:>3} cost {:.4} train err {:.4}",
            s.sweep,
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
        let test_error = model
            .scores(self.test)
            .map(|sc| sc.error_rate(self.test_labels))
            .unwrap_or(f64::NAN);
        let validation_error = self
            .validation
            .map(|(f, l)| model.scores(f).map(|sc| sc.error_rate(l)).unwrap_or(f64::NAN));
        let rec = SweepRecord {
            sweep: s.sweep,
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
        let valid = rec
            .validation_error
            .map(|v| format!(", validation error {v:.4}"))
            .unwrap_or_default();
        let line = format!(
            "sweep {}: train error {:.4}{valid}, test error {:.4}, cost {:.5}, max bond {} (cap {}), discarded weight {:.3e}, {} params, {:.1} s ({:.1} GFLOP/s)",
            rec.sweep, rec.train_error, rec.test_error, rec.cost, rec.max_bond_dim, rec.max_bond, rec.discarded_weight, rec.params, rec.seconds, rec.gflops
        );
        // printed even when the bar is hidden (not a terminal): logs keep the per-sweep line
        self.bar.suspend(|| eprintln!("{line}"));
        let saved = self.records.last().map(|r| r.sweep);
        let step = rec.sweep;
        self.records.push(rec);
        if let Err(e) = checkpoint(self.run, model, self.records.last().expect("just pushed"), step) {
            self.failure = Some(save_failed(e, self.run, "sweep", saved));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// Runs `tnml mps train` with the sweep trainer.
pub(super) fn train(args: &TrainArgs) -> Result<()> {
    args.threads.apply()?;
    let config = SweepConfig {
        sweeps: args.sweeps,
        schedule: SweepConfig::bond_schedule(&args.max_bond, args.cutoff),
        cg_passes: args.cg_passes,
        lambda: args.lambda,
        refit_passes: args.refit_passes,
        loss: args.loss.map_or(tnml_mps::Loss::Squared, tnml_mps::Loss::from),
        turn_site: None,
    };
    config.validate()?;
    if let Some(l) = args.final_refit_lambda {
        if args.final_refit.is_none() {
            bail!("--final-refit-lambda {l} needs --final-refit");
        }
        if !(l >= 0.0 && l.is_finite()) {
            bail!("--final-refit-lambda {l}: the penalty must be finite and >= 0");
        }
    }
    let map = FeatureMap::from(args.feature_map);
    let t_load = Instant::now();
    let train_n = args.limits.train_limit.unwrap_or(usize::MAX);
    let (x, y, side) = load_pixels(&args.data, Split::Train, Some((train_n, args.seed.seed)), None)?;
    let (xt, yt, _) = load_pixels(&args.data, Split::Test, None, args.limits.test_limit)?;
    let sites = side * side;
    let (x, y, x_val, y_val) = match args.validation {
        None => (x, y, Vec::new(), Vec::new()),
        Some(v) if v == 0 || v >= y.len() => bail!(
            "--validation {v} must be between 1 and {} (the training images left for training)",
            y.len().saturating_sub(1)
        ),
        Some(v) => {
            let keep = y.len() - v;
            (
                x[..keep * sites].to_vec(),
                y[..keep].to_vec(),
                x[keep * sites..].to_vec(),
                y[keep..].to_vec(),
            )
        }
    };
    let feats = embed_batch(map, &x, sites)?;
    let test = embed_batch(map, &xt, sites)?;
    let valid = embed_batch(map, &x_val, sites)?;
    let (dataset, dir, _) = args.data.location.resolve();
    let turn_site = args.turn_site.unwrap_or(sites / 2);
    if turn_site >= sites {
        bail!("--turn-site {turn_site}: the chain has sites 0..{sites} ({side}x{side} pixels)");
    }
    let (mut model, start_report) =
        MpsClassifier::from_class_means(&x, &y, (side, side), 10, map, config.trunc_at(1).max_bond)?;
    // everything above is checked before the run directory exists
    let mut run = RunDir::create(args.out.as_deref(), "mps-train")?;
    run.write_config(&serde_json::json!({
        "command": "mps train",
        "tnml_version": env!("CARGO_PKG_VERSION"),
        "dataset": dataset.cli_name(),
        "data_dir": dir,
        "train_samples": y.len(),
        "test_samples": yt.len(),
        "threads": rayon::current_num_threads(),
        "args": args,
    }))?;
    eprintln!(
        "{}: {} train / {} test images at {side}x{side} ({} sites, d = {}), loaded in {:.1} s; {} threads",
        dataset.display_name(),
        y.len(),
        yt.len(),
        sites,
        map.dim(),
        t_load.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    run.write_json("start-truncation.json", &truncation_json(&start_report))?;
    let config = SweepConfig {
        turn_site: Some(turn_site),
        ..config
    };
    let init_test = model.scores(&test)?.error_rate(&yt);
    eprintln!(
        "initial model (class means, bond {}, discarded weight {:.3e}): test error {init_test:.4}",
        model.bond_dims().iter().max().unwrap_or(&1),
        start_report.total_discarded_weight()
    );
    let bar = ProgressBar::new(1).with_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t0 = Instant::now();
    let mut obs = CliObserver {
        bar,
        test: &test,
        test_labels: &yt,
        validation: (!y_val.is_empty()).then_some((&valid, y_val.as_slice())),
        run: &mut run,
        records: Vec::new(),
        failure: None,
        last_log: Instant::now(),
    };
    let result = train_sweeps(&mut model, &feats, &y, &config, &mut obs);
    obs.bar.finish_and_clear();
    let (records, failure) = (std::mem::take(&mut obs.records), obs.failure.take());
    finish_training(&run, &model, result.map(|_| ()), failure)?;
    let total = t0.elapsed().as_secs_f64();
    let mut md = String::new();
    let _ = writeln!(md, "# MPS classifier (sweep training)\n");
    let _ = writeln!(
        md,
        "- data: {} ({} train, {} test), {side}x{side}, feature map {:?}",
        dataset.display_name(),
        y.len(),
        yt.len(),
        map
    );
    let _ = writeln!(
        md,
        "- bond schedule {:?}, cutoff {:e}, {} CG passes, {} refit passes, lambda {}, loss {:?} (predicts {})",
        args.max_bond,
        args.cutoff,
        args.cg_passes,
        args.refit_passes,
        args.lambda,
        config.loss,
        model.decision().name()
    );
    let _ = writeln!(
        md,
        "- initial test error (class-mean init, discarded weight {:.3e}): {init_test:.4}",
        start_report.total_discarded_weight()
    );
    let _ = writeln!(
        md,
        "- total training time: {total:.1} s on {} threads\n",
        rayon::current_num_threads()
    );
    let _ = writeln!(
        md,
        "| sweep | bond cap | max bond | train error | test error | cost | seconds |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
    for r in &records {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.4} | {:.4} | {:.5} | {:.1} |",
            r.sweep, r.max_bond, r.max_bond_dim, r.train_error, r.test_error, r.cost, r.seconds
        );
    }
    if let Some(kind) = args.final_refit {
        let bond = model.label_site().max(1);
        let mut proj = model.project(bond)?;
        let (phi, phi_t) = (proj.reduced_features(&feats)?, proj.reduced_features(&test)?);
        let _ = writeln!(
            md,
            "\n## Core refit at bond {bond} (reduced features {} x {})\n",
            proj.left_dim, proj.right_dim
        );
        let data = RefitData {
            phi: &phi,
            labels: &y,
            test_phi: &phi_t,
            test_labels: &yt,
        };
        md.push_str(&refit_core(&mut proj, &data, kind, args.final_refit_lambda, 500)?);
        atomic_write(
            &run.path().join("model-refit.safetensors"),
            &proj.into_model()?.to_safetensors()?,
        )?;
        let _ = writeln!(md, "- saved as model-refit.safetensors");
    }
    run.write_summary(&md)?;
    print!("{md}");
    println!("\nwrote {}", run.path().display());
    Ok(())
}
