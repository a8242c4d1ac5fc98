//! `tnml mps train` with the sweep trainer: load, start from the class means, sweep with a
//! line per sweep and a checkpoint after each, optionally refit the core at the turn site.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use tnml_data::Split;
use tnml_mps::collective::{sharded_error_rate, sync_model};
use tnml_mps::{embed_batch, train_sweeps_sharded, Decision, FeatureMap, MpsClassifier, SweepConfig};

use super::options::{load_pixels, split_validation, LossArg, LrScheduleArg, MapArg, MpsData, TrainerArg};
use super::project::{refit_core, RefitArg, RefitData};
use super::save::{finish_training, truncation_json};
use super::shard::{check_cap_fits, report_end_memory, report_start_memory, shard_rows};
use super::sweep_observer::{CliObserver, EvalShards, SweepRecord};
use crate::args::{Limits, Seed, Threads};
use crate::cluster::Cluster;
use crate::run_dir::{atomic_write, RunDir};
use crate::run_files;

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
    /// Move the label from site 0 to the turn site truncated at the first sweep's cap instead of
    /// exactly: the exact move widens the bonds to about 10x the start's (110), and the first
    /// sweep's work and environments with them. Measured on MNIST (cross-entropy, validation
    /// split of 10,000): at bond 10 over 2 sweeps 15% less wall time, environments at the start
    /// 354 MB instead of about 2 GB, but 0.13 points more validation error (2.56% against
    /// 2.43%); at bond 20 over 1 sweep 31% less sweep time at the same validation error (1.86%).
    /// Not the default, since it did cost accuracy once.
    #[arg(long)]
    #[serde(default)]
    pub truncated_start: bool,
    /// Feature map.
    #[arg(long, value_enum, default_value = "trig")]
    pub feature_map: MapArg,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: Limits,
    /// Hold out the last N images of the training subset: they are not trained on, and every
    /// sweep (or epoch of --trainer gradient) reports their error (to choose options such as
    /// --lambda, --epochs or --lr without the test set).
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
    /// Gradient trainer: step size over the epochs, constant or a cosine decay to 0 at the end.
    #[arg(long, value_enum, default_value = "constant")]
    pub lr_schedule: LrScheduleArg,
    /// Gradient trainer: augment by translating every training image by up to N pixels each
    /// way (drawn afresh per epoch, white fill; at the model's resolution, 14x14 by default).
    #[arg(long, default_value_t = 0)]
    pub shift: usize,
    /// Gradient trainer: augment by mirroring every training image left-right with probability
    /// 1/2, drawn afresh per epoch (for clothes or objects, not for digits).
    #[arg(long)]
    #[serde(default)]
    pub flip: bool,
    /// Gradient trainer: where the passes and Adam run, cpu or cuda[:N] (needs tnml built with
    /// `--features cuda` and an NVIDIA driver; refused otherwise, never a silent fallback).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: tnml_mps::Device,
    /// Loss. Sweep trainer: squared (the paper's quadratic cost; predicts argmax |f|, the
    /// default) or cross-entropy (softmax logits, predicts argmax f). Gradient trainer:
    /// cross-entropy by default.
    #[arg(long, value_enum)]
    pub loss: Option<LossArg>,
    /// Run directory (default: runs/mps-train-<UTC time>).
    #[arg(long, conflicts_with = "resume")]
    #[serde(skip)]
    pub out: Option<PathBuf>,
    /// Continue the sweeps of an earlier run directory from its last checkpoint, up to --sweeps
    /// sweeps in all (give the same data options; the number of MPI ranks may differ).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// The options given on the command line (clap ids), filled in by `main`: options of one
    /// trainer given with the other are refused, not ignored.
    #[arg(skip)]
    #[serde(skip)]
    pub explicit: Vec<String>,
}

/// Options only the sweep trainer reads.
/// `--device`: cpu, cuda or cuda:N.
fn parse_device(text: &str) -> std::result::Result<tnml_mps::Device, String> {
    text.parse().map_err(|e: tnml_mps::MpsError| e.to_string())
}

const SWEEP_ONLY: [&str; 9] = [
    "resume",
    "truncated_start",
    "sweeps",
    "cutoff",
    "cg_passes",
    "refit_passes",
    "lambda",
    "final_refit",
    "final_refit_lambda",
];
/// Options only the gradient trainer reads.
const GRADIENT_ONLY: [&str; 7] = [
    "epochs",
    "batch_size",
    "lr",
    "lr_schedule",
    "shift",
    "flip",
    "device",
];

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

/// The model and records to continue from: a fresh class-mean start, or a resumed run.
struct Start {
    model: MpsClassifier,
    records: Vec<SweepRecord>,
    /// The class-mean start's truncation (a fresh start only).
    report: Option<tnml_core::TruncReport>,
    /// Sweeps the model has had (0 for a fresh start).
    done: usize,
}

/// Reads the checkpoint and the sweep records of the run directory `dir` (every rank reads
/// them: the run directory is on a file system all ranks see, as the data are).
fn resume_from(dir: &Path) -> Result<Start> {
    let model_path = dir.join(run_files::MODEL);
    let model = MpsClassifier::load(&model_path)
        .with_context(|| format!("--resume {}: reading its checkpoint", dir.display()))?;
    let metrics = dir.join(run_files::METRICS);
    let text = std::fs::read_to_string(&metrics)
        .with_context(|| format!("--resume {}: reading {}", dir.display(), metrics.display()))?;
    let mut records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<SweepRecord>(l)
                .with_context(|| format!("{} line {}: not a sweep record", metrics.display(), i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    // the checkpoint says which sweep it holds (older runs: the last record's)
    let step = MpsClassifier::file_tag(&model_path, super::save::STEP_TAG)?
        .map(|t| t.parse::<usize>())
        .transpose()
        .with_context(|| {
            format!(
                "{}: its {} is not a sweep number",
                model_path.display(),
                super::save::STEP_TAG
            )
        })?;
    let recorded = records.last().map_or(0, |r| r.sweep);
    let lost = match step {
        Some(s) if s > recorded => Some(s),
        Some(s) => {
            records.retain(|r| r.sweep <= s);
            None
        }
        None => None,
    };
    if records.is_empty() && lost.is_none() {
        bail!(
            "--resume {}: no sweep is recorded in {}, nothing to continue",
            dir.display(),
            metrics.display()
        );
    }
    if let Some(s) = lost {
        eprintln!(
            "--resume: the checkpoint holds sweep {s} but {} ends at sweep {recorded} (the run was stopped between the two writes); continuing from the checkpoint, sweep {s} has no record",
            metrics.display()
        );
    }
    Ok(Start {
        model,
        records,
        report: None,
        done: step.unwrap_or(recorded),
    })
}

/// Options a resume may change: how many sweeps in all, the threads, where to resume from, and
/// the refit after the sweeps.
const RESUME_MAY_CHANGE: [&str; 5] = ["sweeps", "threads", "resume", "final_refit", "final_refit_lambda"];

/// Refuses a resume whose options differ from the run's (its config.json): the data, the
/// bond schedule, the loss, the seed, the penalty... of a resumed run are the run's own, and
/// a command line that says otherwise (given or by default) would train silently on other
/// settings. Lists every difference with the run's value.
///
/// # Errors
/// A config.json that cannot be read or holds no options, or options that differ.
fn check_resume_options(args: &TrainArgs, dir: &Path) -> Result<()> {
    let path = dir.join(run_files::CONFIG);
    let text = std::fs::read(&path).with_context(|| format!("--resume: reading {}", path.display()))?;
    let config: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("--resume: {} is not JSON", path.display()))?;
    let saved = config
        .get("args")
        .filter(|a| a.is_object())
        .with_context(|| format!("--resume: {} holds no options of the run", path.display()))?;
    let given = serde_json::to_value(args)?;
    let mut differ: Vec<String> = given
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !RESUME_MAY_CHANGE.contains(&k.as_str()))
        .filter(|(k, v)| saved.get(k.as_str()).is_some_and(|s| s != *v))
        .map(|(k, v)| {
            format!(
                "--{} {v} (the run has {})",
                k.replace('_', "-"),
                saved[k.as_str()]
            )
        })
        .collect();
    let (dataset, _, _) = args.data.location.resolve();
    if let Some(d) = config.get("dataset").and_then(|d| d.as_str()) {
        if d != dataset.cli_name() {
            differ.push(format!("--dataset {} (the run has {d})", dataset.cli_name()));
        }
    }
    if !differ.is_empty() {
        bail!(
            "--resume continues a run with its own options, and these differ from {}: {}. Give them as \
             the run has them (only --sweeps, --threads and --final-refit may change), or start a new run",
            path.display(),
            differ.join(", ")
        );
    }
    Ok(())
}

/// Runs `tnml mps train` with the sweep trainer, on every rank of `cluster`.
pub(super) fn train(args: &TrainArgs, cluster: &Cluster) -> Result<()> {
    args.threads.apply_or(cluster.default_threads())?;
    if let Some(dir) = &args.resume {
        check_resume_options(args, dir)?;
    }
    let root = cluster.is_root();
    let comm = cluster.comm();
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
    if args.final_refit.is_some() && cluster.size() > 1 {
        bail!(
            "--final-refit fits the core on all training images in one process: under MPI ({} ranks) \
             train without it, then run `tnml mps project --refit` on the saved model",
            cluster.size()
        );
    }
    let map = FeatureMap::from(args.feature_map);
    let t_load = Instant::now();
    let train_n = args.limits.train_limit.unwrap_or(usize::MAX);
    if std::env::var("TNML_FAULT").is_ok_and(|f| f == format!("rank-load:{}", cluster.rank())) {
        bail!("TNML_FAULT: simulated failure to load the training shard");
    }
    let (x, y, side) = load_pixels(&args.data, Split::Train, Some((train_n, args.seed.seed)), None)?;
    let (xt, yt, _) = load_pixels(&args.data, Split::Test, None, args.limits.test_limit)?;
    let sites = side * side;
    let ((x, y), (x_val, y_val)) = split_validation(x, y, sites, args.validation)?;
    if y.len() < cluster.size() {
        bail!(
            "{} training images cannot be shared by {} ranks: every rank needs at least one",
            y.len(),
            cluster.size()
        );
    }
    // every rank embeds only its shard (after the seeded shuffle): environments are built and
    // kept for it alone
    let (xs, ys) = shard_rows(&x, &y, sites, cluster);
    let (xts, yts) = shard_rows(&xt, &yt, sites, cluster);
    let (xvs, yvs) = shard_rows(&x_val, &y_val, sites, cluster);
    let feats = embed_batch(map, &xs, sites)?;
    let test = embed_batch(map, &xts, sites)?;
    let valid = embed_batch(map, &xvs, sites)?;
    let (dataset, dir, _) = args.data.location.resolve();
    let turn_site = args.turn_site.unwrap_or(sites / 2);
    if turn_site >= sites {
        bail!("--turn-site {turn_site}: the chain has sites 0..{sites} ({side}x{side} pixels)");
    }
    let cap = config.schedule.iter().map(|t| t.max_bond).max().unwrap_or(1);
    check_cap_fits(ys.len(), sites - 1, cap)?;
    let Start {
        mut model,
        records,
        report,
        done: start_done,
    } = match &args.resume {
        Some(dir) => resume_from(dir)?,
        None => {
            let (model, report) =
                MpsClassifier::from_class_means(&x, &y, (side, side), 10, map, config.trunc_at(1).max_bond)?;
            Start {
                model,
                records: Vec::new(),
                report: Some(report),
                done: 0,
            }
        }
    };
    drop((x, xt, x_val));
    super::options::check_image(&model, side)?;
    if model.feature_map() != map {
        bail!(
            "--resume: the model uses the {:?} feature map, the command line asks for {map:?} (give --feature-map as in the run)",
            model.feature_map()
        );
    }
    // every rank computed the start from the same images; rank 0's is the one all train
    sync_model(comm, &mut model)?;
    let done = start_done;
    if done >= args.sweeps {
        bail!(
            "--resume: the run already has {done} sweeps and --sweeps {} asks for no more (--sweeps counts all sweeps of the run)",
            args.sweeps
        );
    }
    let config = SweepConfig {
        sweeps: args.sweeps - done,
        schedule: (done + 1..=args.sweeps).map(|s| config.trunc_at(s)).collect(),
        turn_site: Some(if args.resume.is_some() {
            model.label_site()
        } else {
            turn_site
        }),
        ..config
    };
    // everything above is checked before the run directory exists (rank 0 writes it)
    let mut run = if root {
        Some(match &args.resume {
            Some(dir) => {
                let mut run = RunDir::open_existing(dir)?;
                run.reset_metrics(&records)?;
                run.write_json(
                    &format!("resume-{done}.json"),
                    &serde_json::json!({"resumed_after_sweep": done, "ranks": cluster.size(), "args": args}),
                )?;
                run
            }
            None => RunDir::create(args.out.as_deref(), "mps-train")?,
        })
    } else {
        None
    };
    if let (Some(run), None) = (&run, &args.resume) {
        run.write_config(&serde_json::json!({
            "command": "mps train",
            "tnml_version": env!("CARGO_PKG_VERSION"),
            "dataset": dataset.cli_name(),
            "data_dir": dir,
            "train_samples": y.len(),
            "test_samples": yt.len(),
            "threads": rayon::current_num_threads(),
            "ranks": cluster.size(),
            "args": args,
        }))?;
    }
    if root {
        eprintln!(
            "{}: {} train / {} test images at {side}x{side} ({} sites, d = {}), loaded in {:.1} s; {} threads{}",
            dataset.display_name(),
            y.len(),
            yt.len(),
            sites,
            map.dim(),
            t_load.elapsed().as_secs_f64(),
            rayon::current_num_threads(),
            if cluster.size() > 1 { format!(" per rank, {} ranks", cluster.size()) } else { String::new() }
        );
    }
    // the trainer moves the label to the turn site first; done here, the start's bonds are known
    let target = config.turn_site.unwrap_or(turn_site);
    let start_moved = if args.resume.is_some() || !args.truncated_start {
        model.move_label_to(target)?;
        None
    } else {
        let dropped = model.move_label_truncated(target, &config.trunc_at(1))?;
        Some(dropped.iter().map(|t| t.discarded_weight).fold(0.0, f64::max))
    };
    report_start_memory(cluster, ys.len(), &model.bond_dims(), cap);
    let init_test = sharded_error_rate(comm, &model, &test, &yts)?;
    if let (Some(run), Some(report)) = (&run, &report) {
        run.write_json("start-truncation.json", &truncation_json(report))?;
        eprintln!(
            "initial model (class means, bond {}, discarded weight {:.3e}{}): test error {init_test:.4}",
            model.bond_dims().iter().max().unwrap_or(&1),
            report.total_discarded_weight(),
            start_moved.map_or(String::new(), |w| format!(
                "; label moved to site {target} truncated at the cap, largest discarded weight of a move {w:.3e}"
            ))
        );
    } else if root {
        eprintln!("resuming after sweep {done}: test error {init_test:.4}");
    }
    let t0 = Instant::now();
    let eval = EvalShards {
        test: &test,
        test_labels: &yts,
        validation: (!y_val.is_empty()).then_some((&valid, yvs.as_slice())),
    };
    let mut obs = CliObserver::new(eval, cluster, run.as_mut(), records, done);
    let result = train_sweeps_sharded(&mut model, &feats, &ys, &config, &mut obs, comm);
    obs.finish();
    let (records, failure) = (std::mem::take(&mut obs.records), obs.failure.take());
    finish_training(run.as_ref(), cluster, &model, result.map(|_| ()), failure)?;
    report_end_memory(cluster, ys.len(), &model.bond_dims());
    // both decision rules on the validation split (issue 13 asks which a quadratic-cost model
    // should use; the test set never decides it)
    let rules = if y_val.is_empty() {
        None
    } else {
        let mut m = model.clone();
        m.set_decision(Decision::Magnitude);
        let magnitude = sharded_error_rate(comm, &m, &valid, &yvs)?;
        m.set_decision(Decision::Signed);
        let signed = sharded_error_rate(comm, &m, &valid, &yvs)?;
        let line = format!(
            "validation error by decision rule: argmax |f| {magnitude:.4}, argmax f {signed:.4} ({} images; the model predicts {})",
            y_val.len(),
            model.decision().name()
        );
        if root {
            eprintln!("{line}");
        }
        Some(line)
    };
    let Some(run) = run else {
        return Ok(());
    };
    let total = t0.elapsed().as_secs_f64();
    let mut md = String::new();
    let _ = writeln!(md, "# MPS classifier (sweep training)\n");
    if let Some(line) = &rules {
        let _ = writeln!(md, "- {line}");
    }
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
    match &report {
        Some(r) => {
            let _ = writeln!(
                md,
                "- initial test error (class-mean init, discarded weight {:.3e}): {init_test:.4}",
                r.total_discarded_weight()
            );
        }
        None => {
            let _ = writeln!(
                md,
                "- resumed after sweep {done} (test error then {init_test:.4})"
            );
        }
    }
    let _ = writeln!(
        md,
        "- training time: {total:.1} s on {} threads{}\n",
        rayon::current_num_threads(),
        if cluster.size() > 1 {
            format!(" per rank, {} MPI ranks", cluster.size())
        } else {
            String::new()
        }
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
            labels: &ys,
            test_phi: &phi_t,
            test_labels: &yts,
        };
        md.push_str(&refit_core(&mut proj, &data, kind, args.final_refit_lambda, 500)?);
        atomic_write(
            &run.path().join(run_files::MODEL_REFIT),
            &proj.into_model()?.to_safetensors()?,
        )?;
        let _ = writeln!(md, "- saved as model-refit.safetensors");
    }
    run.write_summary(&md)?;
    print!("{md}");
    println!("\nwrote {}", run.path().display());
    Ok(())
}
