//! `tnml mps train` with the sweep trainer: load, start from the class means, sweep with a
//! line per sweep and a checkpoint after each, optionally refit the core at the turn site.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{bail, Result};
use tnml_mps::collective::{sharded_error_rate, sync_model};
use tnml_mps::{
    train_sweeps_sharded, Decision, FeatureMap, FinalRefit, MpsClassifier, SweepConfig, SweepSettings,
};

use super::project::{refit_core, RefitData};
use super::resume::{check_resume_options, resume_from, Start};
use super::save::{finish_training, truncation_json};
use super::shard::{check_cap_fits, report_end_memory, report_start_memory, RankData};
use super::sweep_observer::{CliObserver, EvalShards, SweepRecord};
use super::train_args::TrainArgs;
use crate::cluster::Cluster;
use crate::run_dir::{atomic_write, RunDir};
use crate::run_files;
use crate::run_files::RunConfig;

/// The sweep configuration of the command line (the whole run's schedule) and its final
/// refit, checked ([`SweepSettings::config`], as Python's are).
fn sweep_config(args: &TrainArgs, cluster: &Cluster) -> Result<(SweepConfig, Option<FinalRefit>)> {
    let s = &args.sweep;
    let (config, refit) = SweepSettings {
        sweeps: s.sweeps,
        max_bonds: args.max_bond.clone(),
        cutoff: s.cutoff,
        cg_passes: s.cg_passes,
        lambda: s.lambda,
        refit_passes: s.refit_passes,
        loss: args.loss,
        final_refit: s.final_refit,
        final_refit_lambda: s.final_refit_lambda,
    }
    .config()?;
    if refit.is_some() && cluster.size() > 1 {
        bail!(
            "--final-refit fits the core on all training images in one process: under MPI ({} ranks) \
             train without it, then run `tnml mps project --refit` on the saved model",
            cluster.size()
        );
    }
    Ok((config, refit))
}

/// The model to train: the run's checkpoint (`--resume`) or the class-mean start truncated at
/// the first sweep's cap; checked against the images and the feature map.
fn start_model(args: &TrainArgs, data: &RankData, config: &SweepConfig, map: FeatureMap) -> Result<Start> {
    let side = data.side;
    let start = match &args.sweep.resume {
        Some(dir) => resume_from(dir)?,
        None => {
            let (model, report) = MpsClassifier::from_class_means(
                &data.train_pixels,
                &data.train_labels,
                (side, side),
                10,
                map,
                config.trunc_at(1).max_bond,
            )?;
            Start {
                model,
                records: Vec::new(),
                report: Some(report),
                done: 0,
            }
        }
    };
    super::options::check_image(&start.model, side)?;
    if start.model.feature_map() != map {
        bail!(
            "--resume: the model uses the {:?} feature map, the command line asks for {map:?} (give --feature-map as in the run)",
            start.model.feature_map()
        );
    }
    if start.done >= args.sweep.sweeps {
        bail!(
            "--resume: the run already has {} sweeps and --sweeps {} asks for no more (--sweeps counts all sweeps of the run)",
            start.done,
            args.sweep.sweeps
        );
    }
    Ok(start)
}

/// The run directory on rank 0 (none elsewhere): a new one with its `config.json`, or the
/// resumed one with its metrics cut back to `records` and a `resume-<done>.json`.
fn open_run(
    args: &TrainArgs,
    cluster: &Cluster,
    records: &[SweepRecord],
    done: usize,
    data: &RankData,
) -> Result<Option<RunDir>> {
    if !cluster.is_root() {
        return Ok(None);
    }
    if let Some(dir) = &args.sweep.resume {
        let mut run = RunDir::open_existing(dir)?;
        run.reset_metrics(records)?;
        run.write_json(
            &format!("resume-{done}.json"),
            &serde_json::json!({"resumed_after_sweep": done, "ranks": cluster.size(), "args": args}),
        )?;
        return Ok(Some(run));
    }
    let run = RunDir::create(args.out.as_deref(), "mps-train")?;
    let (dataset, dir, _) = args.data.location.resolve();
    run.write_config(&RunConfig::new(
        "mps train",
        Some(args),
        serde_json::json!({
            "dataset": dataset.cli_name(),
            "data_dir": dir,
            "train_samples": data.train_labels.len(),
            "test_samples": data.test_total,
            "threads": rayon::current_num_threads(),
            "ranks": cluster.size(),
        }),
    ))?;
    Ok(Some(run))
}

/// ` per rank, N ranks` under MPI, empty in one process.
fn ranks_note(cluster: &Cluster, ranks: &str) -> String {
    if cluster.size() > 1 {
        format!(" per rank, {} {ranks}", cluster.size())
    } else {
        String::new()
    }
}

/// Moves the label to the turn site (exactly, or truncated at the first cap with
/// `--truncated-start`), reports the memory and the start's test error; returns that error.
fn place_label(
    args: &TrainArgs,
    cluster: &Cluster,
    model: &mut MpsClassifier,
    config: &SweepConfig,
    data: &RankData,
    start: (&Option<tnml_core::TruncReport>, Option<&RunDir>, usize),
) -> Result<f64> {
    let (report, run, done) = start;
    let target = config.turn_site.unwrap_or(data.sites() / 2);
    let start_moved = if args.sweep.resume.is_some() || !args.sweep.truncated_start {
        model.move_label_to(target)?;
        None
    } else {
        let dropped = model.move_label_truncated(target, &config.trunc_at(1))?;
        Some(dropped.iter().map(|t| t.discarded_weight).fold(0.0, f64::max))
    };
    let cap = config.schedule.iter().map(|t| t.max_bond).max().unwrap_or(1);
    report_start_memory(cluster, data.train_shard_labels.len(), &model.bond_dims(), cap);
    let init_test = sharded_error_rate(cluster.comm(), model, &data.test, &data.test_shard_labels)?;
    if let (Some(run), Some(report)) = (run, report) {
        run.write_json("start-truncation.json", &truncation_json(report))?;
        eprintln!(
            "initial model (class means, bond {}, discarded weight {:.3e}{}): test error {init_test:.4}",
            model.bond_dims().iter().max().unwrap_or(&1),
            report.total_discarded_weight(),
            start_moved.map_or(String::new(), |w| format!(
                "; label moved to site {target} truncated at the cap, largest discarded weight of a move {w:.3e}"
            ))
        );
    } else if cluster.is_root() {
        eprintln!("resuming after sweep {done}: test error {init_test:.4}");
    }
    Ok(init_test)
}

/// Both decision rules on the validation split (issue 13 asks which a quadratic-cost model
/// should use; the test set never decides it); `None` without a validation split.
fn decision_rules(cluster: &Cluster, model: &MpsClassifier, data: &RankData) -> Result<Option<String>> {
    if data.validation_total == 0 {
        return Ok(None);
    }
    let (valid, labels) = (&data.validation, &data.validation_shard_labels);
    let mut m = model.clone();
    m.set_decision(Decision::Magnitude);
    let magnitude = sharded_error_rate(cluster.comm(), &m, valid, labels)?;
    m.set_decision(Decision::Signed);
    let signed = sharded_error_rate(cluster.comm(), &m, valid, labels)?;
    let line = format!(
        "validation error by decision rule: argmax |f| {magnitude:.4}, argmax f {signed:.4} ({} images; the model predicts {})",
        data.validation_total,
        model.decision().name()
    );
    if cluster.is_root() {
        eprintln!("{line}");
    }
    Ok(Some(line))
}

/// Runs `tnml mps train` with the sweep trainer, on every rank of `cluster`.
pub(super) fn train(args: &TrainArgs, cluster: &Cluster) -> Result<()> {
    args.threads.apply_or(cluster.default_threads())?;
    if let Some(dir) = &args.sweep.resume {
        check_resume_options(args, dir)?;
    }
    let (config, refit) = sweep_config(args, cluster)?;
    let map = args.feature_map;
    let t_load = Instant::now();
    if std::env::var("TNML_FAULT").is_ok_and(|f| f == format!("rank-load:{}", cluster.rank())) {
        bail!("TNML_FAULT: simulated failure to load the training shard");
    }
    let mut data = RankData::load(args, cluster)?;
    let (side, sites) = (data.side, data.sites());
    // checked here, before anything is computed; the resumed model's label site is its own
    let turn_site = args.turn_site.unwrap_or(sites / 2);
    let config = config.turning_at(turn_site, sites)?;
    let cap = config.schedule.iter().map(|t| t.max_bond).max().unwrap_or(1);
    check_cap_fits(data.train_shard_labels.len(), sites - 1, cap)?;
    let Start {
        mut model,
        records,
        report,
        done,
    } = start_model(args, &data, &config, map)?;
    data.train_pixels = Vec::new();
    // every rank computed the start from the same images; rank 0's is the one all train
    sync_model(cluster.comm(), &mut model)?;
    let turn_site = if args.sweep.resume.is_some() {
        model.label_site()
    } else {
        turn_site
    };
    let config = SweepConfig {
        sweeps: args.sweep.sweeps - done,
        schedule: (done + 1..=args.sweep.sweeps)
            .map(|s| config.trunc_at(s))
            .collect(),
        ..config
    }
    .turning_at(turn_site, sites)?;
    // everything above is checked before the run directory exists (rank 0 writes it)
    let mut run = open_run(args, cluster, &records, done, &data)?;
    if cluster.is_root() {
        let (dataset, _, _) = args.data.location.resolve();
        eprintln!(
            "{}: {} train / {} test images at {side}x{side} ({sites} sites, d = {}), loaded in {:.1} s; {} threads{}",
            dataset.display_name(),
            data.train_labels.len(),
            data.test_total,
            map.dim(),
            t_load.elapsed().as_secs_f64(),
            rayon::current_num_threads(),
            ranks_note(cluster, "ranks")
        );
    }
    let init_test = place_label(
        args,
        cluster,
        &mut model,
        &config,
        &data,
        (&report, run.as_ref(), done),
    )?;
    let t0 = Instant::now();
    let eval = EvalShards {
        test: &data.test,
        test_labels: &data.test_shard_labels,
        validation: data.validation_shard(),
    };
    let mut obs = CliObserver::new(eval, cluster, run.as_mut(), records, done);
    let result = train_sweeps_sharded(
        &mut model,
        &data.train,
        &data.train_shard_labels,
        &config,
        &mut obs,
        cluster.comm(),
    );
    obs.finish();
    let (records, failure) = (std::mem::take(&mut obs.records), obs.failure.take());
    finish_training(run.as_ref(), cluster, &model, result.map(|_| ()), failure)?;
    report_end_memory(cluster, data.train_shard_labels.len(), &model.bond_dims());
    let rules = decision_rules(cluster, &model, &data)?;
    let Some(run) = run else {
        return Ok(());
    };
    let facts = RunFacts {
        rules,
        report,
        init_test,
        done,
        seconds: t0.elapsed().as_secs_f64(),
        loss: config.loss,
    };
    let mut md = summary(args, cluster, &model, &data, &facts, &records);
    if let Some(refit) = refit {
        md.push_str(&final_refit(&run, &model, &data, refit)?);
    }
    run.write_summary(&md)?;
    print!("{md}");
    println!("\nwrote {}", run.path().display());
    Ok(())
}

/// What the summary reports besides the model, the data and the records.
struct RunFacts {
    rules: Option<String>,
    report: Option<tnml_core::TruncReport>,
    init_test: f64,
    done: usize,
    seconds: f64,
    loss: tnml_mps::Loss,
}

/// `summary.md`: data, options, start, time and the table of sweeps.
fn summary(
    args: &TrainArgs,
    cluster: &Cluster,
    model: &MpsClassifier,
    data: &RankData,
    facts: &RunFacts,
    records: &[SweepRecord],
) -> String {
    let (dataset, _, _) = args.data.location.resolve();
    let side = data.side;
    let init_test = facts.init_test;
    let mut md = String::new();
    let _ = writeln!(md, "# MPS classifier (sweep training)\n");
    if let Some(line) = &facts.rules {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(
        md,
        "- data: {} ({} train, {} test), {side}x{side}, feature map {:?}",
        dataset.display_name(),
        data.train_labels.len(),
        data.test_total,
        model.feature_map()
    );
    let _ = writeln!(
        md,
        "- bond schedule {:?}, cutoff {:e}, {} CG passes, {} refit passes, lambda {}, loss {:?} (predicts {})",
        args.max_bond,
        args.sweep.cutoff,
        args.sweep.cg_passes,
        args.sweep.refit_passes,
        args.sweep.lambda,
        facts.loss,
        model.decision().name()
    );
    let _ = match &facts.report {
        Some(r) => writeln!(
            md,
            "- initial test error (class-mean init, discarded weight {:.3e}): {init_test:.4}",
            r.total_discarded_weight()
        ),
        None => writeln!(
            md,
            "- resumed after sweep {} (test error then {init_test:.4})",
            facts.done
        ),
    };
    let _ = writeln!(
        md,
        "- training time: {:.1} s on {} threads{}\n",
        facts.seconds,
        rayon::current_num_threads(),
        ranks_note(cluster, "MPI ranks")
    );
    let _ = writeln!(
        md,
        "| sweep | bond cap | max bond | train error | test error | cost | seconds |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
    for r in records {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.4} | {:.4} | {:.5} | {:.1} |",
            r.sweep, r.max_bond, r.max_bond_dim, r.train_error, r.test_error, r.cost, r.seconds
        );
    }
    md
}

/// `--final-refit`: the core at the label's bond refit on the reduced features, saved as
/// `model-refit.safetensors`; returns its section of the summary.
fn final_refit(run: &RunDir, model: &MpsClassifier, data: &RankData, refit: FinalRefit) -> Result<String> {
    let bond = model.label_site().max(1);
    let mut proj = model.project(bond)?;
    let (phi, phi_t) = (
        proj.reduced_features(&data.train)?,
        proj.reduced_features(&data.test)?,
    );
    let mut md = format!(
        "\n## Core refit at bond {bond} (reduced features {} x {})\n\n",
        proj.left_dim, proj.right_dim
    );
    let refit_data = RefitData {
        phi: &phi,
        labels: &data.train_shard_labels,
        test_phi: &phi_t,
        test_labels: &data.test_shard_labels,
    };
    md.push_str(&refit_core(
        &mut proj,
        &refit_data,
        refit.kind,
        refit.lambda,
        500,
    )?);
    atomic_write(
        &run.path().join(run_files::MODEL_REFIT),
        &proj.into_model()?.to_safetensors()?,
    )?;
    let _ = writeln!(md, "- saved as model-refit.safetensors");
    Ok(md)
}
