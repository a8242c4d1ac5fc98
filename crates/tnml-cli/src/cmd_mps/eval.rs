//! `tnml mps eval`: error rate and per-class accuracy of a saved model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use tnml_mps::{embed_batch, MpsClassifier, Scores, SiteFeatures};

use super::options::{check_image, load_pixels, MpsData};
use crate::args::SplitArg;
use crate::confusion::{report, run_dir_of, Confusion};

/// A saved model and the images it runs on (`mps eval`, `mps predict`).
#[derive(Debug, Args)]
pub struct ModelOnImages {
    /// Model file (model.safetensors of a run directory).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: MpsData,
    /// Which split.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Use at most this many images of the split (the first ones). `--limit` is the old name.
    #[arg(long = "test-limit", visible_alias = "limit")]
    pub limit: Option<usize>,
}

/// Arguments of `tnml mps eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub on: ModelOnImages,
    /// Another model of the same shape (e.g. the same training on another number of MPI ranks):
    /// also print how many predictions agree, the distance of the two models as tensors
    /// `||W - W'|| / ||W||` (contracted, independent of the gauge) and the largest relative
    /// difference of one site tensor.
    #[arg(long, value_name = "MODEL")]
    pub compare: Option<PathBuf>,
}

/// A saved model with the images it is evaluated on (what `mps eval` and `mps predict` share).
pub(super) struct Evaluated {
    pub model: MpsClassifier,
    pub feats: SiteFeatures,
    pub labels: Vec<usize>,
    pub scores: Scores,
    /// Seconds the scoring took.
    pub seconds: f64,
}

/// Loads the model and the images (the first `limit` of the split) and scores them.
///
/// # Errors
/// A bad model file, missing data, an image size or labels the model does not fit.
pub(super) fn evaluate(on: &ModelOnImages) -> Result<Evaluated> {
    let model = MpsClassifier::load(&on.model)?;
    let (x, y, side) = load_pixels(&on.data, on.split.into(), None, on.limit)?;
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
    Ok(Evaluated {
        model,
        feats,
        labels: y,
        scores,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

pub(super) fn eval(args: &EvalArgs) -> Result<()> {
    let Evaluated {
        model,
        feats,
        labels: y,
        scores,
        seconds: secs,
    } = evaluate(&args.on)?;
    let pred = scores.predictions();
    println!(
        "{}: {} images, error {:.4} ({}, {:.0} images/s)",
        args.on.model.display(),
        y.len(),
        scores.error_rate(&y),
        model.decision().name(),
        y.len() as f64 / secs
    );
    let split = tnml_data::Split::from(args.on.split).name();
    let confusion = Confusion::new(model.num_labels(), &y, &pred, split, &args.on.model)?;
    report(&confusion, &run_dir_of(&args.on.model))?;
    if let Some(path) = &args.compare {
        compare(&model, &pred, path, &feats, &y)?;
    }
    Ok(())
}

/// Prints how `other` differs from `model`: predictions, error, tensor distance, site tensors.
fn compare(
    model: &MpsClassifier,
    pred: &[usize],
    path: &Path,
    feats: &SiteFeatures,
    y: &[usize],
) -> Result<()> {
    let other = MpsClassifier::load(path)?;
    if other.image() != model.image()
        || other.label_site() != model.label_site()
        || other.feature_map() != model.feature_map()
    {
        bail!(
            "--compare {}: {}x{} images, label on site {}, {:?} map; the model: {}x{}, site {}, {:?}",
            path.display(),
            other.image().0,
            other.image().1,
            other.label_site(),
            other.feature_map(),
            model.image().0,
            model.image().1,
            model.label_site(),
            model.feature_map()
        );
    }
    let scores = other.scores(feats)?;
    let agree = pred
        .iter()
        .zip(scores.predictions())
        .filter(|(a, b)| **a == *b)
        .count();
    let mut rel = score_differences(&model.scores(feats)?, &scores);
    rel.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        rel.get(((rel.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let (a, b) = (model.to_mps()?, other.to_mps()?);
    let (aa, bb, ab) = (a.inner(&a)?, b.inner(&b)?, a.inner(&b)?);
    let distance = (aa + bb - 2.0 * ab).max(0.0).sqrt() / aa.sqrt();
    let mut worst = (0.0f64, 0);
    for (k, (sa, sb)) in model.sites().iter().zip(other.sites()).enumerate() {
        let norm = sa.data().iter().map(|v| v * v).sum::<f64>().sqrt();
        let diff = if (sa.left(), sa.right()) == (sb.left(), sb.right()) {
            sa.data()
                .iter()
                .zip(sb.data())
                .map(|(p, q)| (p - q).powi(2))
                .sum::<f64>()
                .sqrt()
        } else {
            f64::INFINITY
        };
        if diff / norm > worst.0 {
            worst = (diff / norm, k);
        }
    }
    println!(
        "compared with {}: {agree}/{} predictions agree ({:.3}%), its error {:.4}; \
         scores f(x) differ by {:.3e} (median over images of |f - f'| / |f|; 99th percentile {:.3e}); \
         ||W - W'|| / ||W|| = {distance:.3e}; largest site difference {:.3e} (site {})",
        path.display(),
        y.len(),
        100.0 * agree as f64 / y.len().max(1) as f64,
        scores.error_rate(y),
        quantile(0.5),
        quantile(0.99),
        worst.0,
        worst.1
    );
    Ok(())
}

/// Per image `|f - f'| / |f|` of two models' score vectors (each normalized with its own scale).
fn score_differences(a: &Scores, b: &Scores) -> Vec<f64> {
    let big_l = a.num_labels;
    a.values
        .chunks_exact(big_l)
        .zip(b.values.chunks_exact(big_l))
        .zip(a.log_scale.iter().zip(&b.log_scale))
        .map(|((va, vb), (sa, sb))| {
            let ratio = (sb - sa).exp();
            let diff: f64 = va
                .iter()
                .zip(vb)
                .map(|(&p, &q)| (f64::from(p) - f64::from(q) * ratio).powi(2))
                .sum();
            let norm: f64 = va.iter().map(|&p| f64::from(p).powi(2)).sum();
            (diff / norm).sqrt()
        })
        .collect()
}
