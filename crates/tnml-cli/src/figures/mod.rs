//! The figures of a run directory, drawn from its recorded files (`metrics.jsonl`,
//! `entanglement.jsonl`, `entanglement-baseline.json`, `truncation.csv`, `bond-choices.json`,
//! `compression-path.jsonl`, `confusion-*.json`; names in [`crate::run_files`]) into `plots/`:
//! used by `tnml plot` and at the end of every run that records them. One function per figure
//! family (`curves`, `entanglement`, `confusion`); `sink` writes them.

mod confusion;
mod curves;
mod entanglement;
mod sink;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::run_files::{BOND_CHOICES, COMPRESSION_PATH, ENTANGLEMENT, METRICS, TRUNCATION};
use sink::{read_jsonl, Sink};

/// What a run's `metrics.jsonl` records, read off its first record.
enum Metrics {
    /// MPS sweep trainer: one record per sweep.
    Sweeps,
    /// MPS gradient trainer: error rates per epoch.
    MpsEpochs,
    /// Network: accuracy and loss per epoch.
    NetEpochs,
}

fn metrics_kind(path: &Path) -> Result<Option<Metrics>> {
    let recs: Vec<serde_json::Value> = read_jsonl(path)?;
    Ok(recs.first().map(|r| {
        if r.get("sweep").is_some() {
            Metrics::Sweeps
        } else if r.get("train_error").is_some() {
            Metrics::MpsEpochs
        } else {
            Metrics::NetEpochs
        }
    }))
}

/// Draws all figures of `run` into `run/plots/`; returns the files written.
pub fn plot_run(run: &Path, formats: &[&str]) -> Result<Vec<PathBuf>> {
    let mut sink = Sink::create(run, formats)?;
    let metrics = run.join(METRICS);
    if metrics.is_file() {
        match metrics_kind(&metrics)? {
            Some(Metrics::Sweeps) => curves::mps_errors(&mut sink, &metrics, "sweep")?,
            Some(Metrics::MpsEpochs) => curves::mps_errors(&mut sink, &metrics, "epoch")?,
            Some(Metrics::NetEpochs) => curves::epoch_curves(&mut sink, &metrics)?,
            None => {}
        }
    }
    let ent = run.join(ENTANGLEMENT);
    if ent.is_file() {
        entanglement::layers(&mut sink, run, &ent)?;
    }
    let trunc = run.join(TRUNCATION);
    if trunc.is_file() {
        curves::truncation(&mut sink, &trunc)?;
    }
    let bonds = run.join(BOND_CHOICES);
    if bonds.is_file() {
        entanglement::bond_choices(&mut sink, &bonds)?;
    }
    confusion::confusions(&mut sink, run)?;
    let path = run.join(COMPRESSION_PATH);
    if path.is_file() {
        curves::compression_path(&mut sink, &path)?;
    }
    Ok(sink.into_written())
}
