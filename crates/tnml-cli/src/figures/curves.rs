//! Curves over training and compression: error per sweep (MPS), accuracy and loss per epoch
//! (networks), truncation error against the bond dimension, and the accuracy-parameters path
//! of `net compress --auto`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use tnml_nn::train::EpochRecord;

use super::sink::{chart, read_jsonl, series, Sink};
use crate::run_files::{ErrorRates, PathPoint};

/// `error`: train, test (and validation) error rate per sweep or epoch (`step`) of an MPS run.
pub fn mps_errors(sink: &mut Sink, metrics: &Path, step: &str) -> Result<()> {
    let recs: Vec<ErrorRates> = read_jsonl(metrics)?;
    let curve = |f: &dyn Fn(&ErrorRates) -> Option<f64>| -> Vec<(f64, f64)> {
        recs.iter()
            .filter_map(|r| Some((r.step, 100.0 * f(r)?)))
            .collect()
    };
    let lines: Vec<_> = [
        series("train", curve(&|r| Some(r.train_error)), 0, false),
        series("test", curve(&|r| r.test_error), 1, false),
        series("validation", curve(&|r| r.validation_error), 2, false),
    ]
    .into_iter()
    .filter(|s| !s.points.is_empty())
    .collect();
    sink.lines(
        &chart(format!("error per {step}"), step, "error (%)", lines, false),
        "error",
    )
}

/// `accuracy` and `loss`: train, test (and validation) per epoch of a network run.
pub fn epoch_curves(sink: &mut Sink, metrics: &Path) -> Result<()> {
    let recs: Vec<EpochRecord> = read_jsonl(metrics)?;
    let curve = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        recs.iter()
            .filter_map(|r| Some((r.epoch as f64, f(r)?)))
            .collect()
    };
    let accuracy: Vec<_> = [
        series("train", curve(&|r| Some(100.0 * r.train_acc)), 0, false),
        series("test", curve(&|r| r.test_acc.map(|a| 100.0 * a)), 1, false),
        series(
            "validation",
            curve(&|r| r.validation_acc.map(|a| 100.0 * a)),
            2,
            false,
        ),
    ]
    .into_iter()
    .filter(|s| !s.points.is_empty())
    .collect();
    sink.lines(
        &chart("accuracy", "epoch", "accuracy (%)", accuracy, false),
        "accuracy",
    )?;
    let loss = vec![
        series("train", curve(&|r| Some(r.train_loss)), 0, false),
        series("test", curve(&|r| r.test_loss), 1, false),
    ];
    sink.lines(&chart("loss", "epoch", "cross-entropy", loss, true), "loss")
}

/// `truncation`: relative error against the bond cap, one line per layer, from
/// `layer,max_bond,relative_error` rows (rows that do not parse are skipped).
pub fn truncation(sink: &mut Sink, csv: &Path) -> Result<()> {
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let mut by_layer: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() >= 3 {
            if let (Ok(d), Ok(e)) = (f[1].parse::<f64>(), f[2].parse::<f64>()) {
                by_layer.entry(f[0].to_string()).or_default().push((d, e));
            }
        }
    }
    let lines = by_layer
        .into_iter()
        .enumerate()
        .map(|(i, (l, pts))| series(&l, pts, i, false))
        .collect();
    let title = "truncation error vs bond dimension";
    sink.lines(
        &chart(title, "max bond dimension", "||W - W_D|| / ||W||", lines, true),
        "truncation",
    )
}

/// `compression-path`: validation accuracy against MPO parameters, bonds per bond and uniform.
pub fn compression_path(sink: &mut Sink, path: &Path) -> Result<()> {
    let points: Vec<PathPoint> = read_jsonl(path)?;
    let curve = |kind: &str| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| (p.params as f64, 100.0 * p.val_acc))
            .collect()
    };
    let lines = vec![
        series("bonds chosen per bond", curve("auto"), 0, false),
        series("one bond dimension", curve("uniform"), 1, true),
    ];
    let title = "validation accuracy against MPO parameters";
    let c = chart(
        title,
        "parameters of the MPO layers",
        "validation accuracy (%)",
        lines,
        false,
    );
    sink.lines(&c, "compression-path")
}
