//! `mps train --resume`: the checkpoint and records to continue from, and the check that the
//! command line asks for the run's own options.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tnml_mps::MpsClassifier;

use super::sweep_observer::SweepRecord;
use super::train_args::TrainArgs;
use crate::run_files;

/// The model and records to continue from: a fresh class-mean start, or a resumed run.
pub(super) struct Start {
    pub(super) model: MpsClassifier,
    pub(super) records: Vec<SweepRecord>,
    /// The class-mean start's truncation (a fresh start only).
    pub(super) report: Option<tnml_core::TruncReport>,
    /// Sweeps the model has had (0 for a fresh start).
    pub(super) done: usize,
}

/// Reads the checkpoint and the sweep records of the run directory `dir` (every rank reads
/// them: the run directory is on a file system all ranks see, as the data are).
pub(super) fn resume_from(dir: &Path) -> Result<Start> {
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
pub(super) fn check_resume_options(args: &TrainArgs, dir: &Path) -> Result<()> {
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
