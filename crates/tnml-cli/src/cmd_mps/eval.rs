//! `tnml mps eval`: error rate and per-class accuracy of a saved model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use tnml_mps::{embed_batch, MpsClassifier};

use super::options::{check_image, load_pixels, MpsData};
use crate::args::SplitArg;

/// Arguments of `tnml mps eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model file (model.safetensors of a run directory).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: MpsData,
    /// Which split.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Use at most this many images (the first ones).
    #[arg(long)]
    pub limit: Option<usize>,
}

pub(super) fn eval(args: &EvalArgs) -> Result<()> {
    let model = MpsClassifier::load(&args.model)?;
    let (x, y, side) = load_pixels(&args.data, args.split.into(), None, args.limit)?;
    check_image(&model, side)?;
    if let Some(&l) = y.iter().find(|&&l| l >= model.num_labels()) {
        bail!(
            "the data has label {l}, the model only {} labels",
            model.num_labels()
        );
    }
    let feats = embed_batch(model.feature_map(), &x, side * side)?;
    let t0 = Instant::now();
    let scores = model.scores(&feats)?;
    let secs = t0.elapsed().as_secs_f64();
    let pred = scores.predictions();
    println!(
        "{}: {} images, error {:.4} ({}, {:.0} images/s)",
        args.model.display(),
        y.len(),
        scores.error_rate(&y),
        model.decision().name(),
        y.len() as f64 / secs
    );
    for l in 0..model.num_labels() {
        let total = y.iter().filter(|&&t| t == l).count();
        let right = y.iter().zip(&pred).filter(|(t, p)| **t == l && **p == l).count();
        println!("  class {l}: {right}/{total} correct");
    }
    Ok(())
}
