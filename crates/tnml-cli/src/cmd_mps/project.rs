//! `tnml mps project`: the classifier in mixed canonical form around a bond (paper section 6.2),
//! its reduced features and core, and the core's ridge or softmax refit (shared with
//! `tnml mps train --final-refit`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use tnml_data::Split;
use tnml_mps::{embed_batch, MpsClassifier, Projection, ReducedFeatures, RefitKind};

use super::options::{check_image, choice, load_pixels, MpsData};
use crate::run_dir::{atomic_write, RunDir};
use crate::run_files;

/// Arguments of `tnml mps project`.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Model file.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: MpsData,
    /// Bond to project on, as a position: the number of sites to its left (default: the
    /// middle). (`--bond` elsewhere is a bond dimension, hence the other name.)
    #[arg(long)]
    pub at_bond: Option<usize>,
    /// Refit the core on the reduced training features: `ridge` (least squares on one-hot
    /// targets, the sweeps' cost; predicts argmax |f|) or `softmax` (multinomial logistic
    /// regression by L-BFGS; predicts argmax f). Given only --refit-lambda, ridge.
    #[arg(long, value_parser = choice::<RefitKind>(&RefitKind::NAMES))]
    pub refit: Option<RefitKind>,
    /// L2 penalty of the refit. Default: 1e-3 for ridge; for softmax, the best of 1e-3 .. 1e-7
    /// on a validation set (the last sixth of the training images), then refit on all of them.
    #[arg(long)]
    pub refit_lambda: Option<f64>,
    /// Maximum L-BFGS iterations of the softmax refit.
    #[arg(long, default_value_t = 500)]
    pub refit_iters: usize,
    /// Use at most this many training images for the refit.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use at most this many test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Run directory (default: runs/mps-project-<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub(super) fn project(args: &ProjectArgs) -> Result<()> {
    let model = MpsClassifier::load(&args.model)?;
    let (x, y, side) = load_pixels(&args.data, Split::Train, None, args.train_limit)?;
    let (xt, yt, _) = load_pixels(&args.data, Split::Test, None, args.test_limit)?;
    check_image(&model, side)?;
    let map = model.feature_map();
    let (feats, test) = (
        embed_batch(map, &x, side * side)?,
        embed_batch(map, &xt, side * side)?,
    );
    let bond = args.at_bond.unwrap_or(model.num_sites() / 2);
    let mut proj = model.project(bond)?;
    let (phi, phi_t) = (proj.reduced_features(&feats)?, proj.reduced_features(&test)?);
    let run = RunDir::create(args.out.as_deref(), "mps-project")?;
    let mut md = format!(
        "# Projection at bond {bond}\n\n- reduced feature dimension m_l x m_r = {} x {} = {}\n- before refit: train error {:.4}, test error {:.4}\n",
        proj.left_dim,
        proj.right_dim,
        phi.dim,
        proj.error_rate(&phi, &y),
        proj.error_rate(&phi_t, &yt)
    );
    let refit = args.refit.or(args.refit_lambda.map(|_| RefitKind::Ridge));
    if let Some(kind) = refit {
        let data = RefitData {
            phi: &phi,
            labels: &y,
            test_phi: &phi_t,
            test_labels: &yt,
        };
        md.push_str(&refit_core(
            &mut proj,
            &data,
            kind,
            args.refit_lambda,
            args.refit_iters,
        )?);
        let refitted = proj.clone().into_model()?;
        atomic_write(
            &run.path().join(run_files::MODEL_REFIT),
            &refitted.to_safetensors()?,
        )?;
    }
    let core: Vec<u8> = proj.core.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F64,
        vec![model.num_labels(), proj.left_dim, proj.right_dim],
        &core,
    )?;
    run.write_file(
        "core.safetensors",
        &safetensors::serialize([("core", view)], None)?,
    )?;
    run.write_summary(&md)?;
    print!("{md}");
    println!("\nwrote {}", run.path().display());
    Ok(())
}

/// Reduced features and labels of the training and test sets.
pub(super) struct RefitData<'a> {
    pub phi: &'a ReducedFeatures,
    pub labels: &'a [usize],
    pub test_phi: &'a ReducedFeatures,
    pub test_labels: &'a [usize],
}

/// Refits the core of `proj` (`kind`, penalty `lambda`; for softmax without one, chosen on the
/// last sixth of the training images) and returns the summary lines.
pub(super) fn refit_core(
    proj: &mut Projection,
    data: &RefitData<'_>,
    kind: RefitKind,
    lambda: Option<f64>,
    iters: usize,
) -> Result<String> {
    let (phi, y) = (data.phi, data.labels);
    let mut md = String::new();
    let t0 = Instant::now();
    let out = proj.refit_with_defaults(phi, y, kind, lambda, iters)?;
    if !out.validation.is_empty() {
        let _ = writeln!(
            md,
            "- softmax penalty chosen on the last {} training images (fit on the other {}):",
            out.holdout,
            y.len() - out.holdout
        );
        for (l, e) in &out.validation {
            let _ = writeln!(md, "  - lambda {l:e}: validation error {e:.4}");
        }
    }
    let what = match &out.softmax {
        None => format!("ridge refit (lambda {}): cost {:.5}", out.lambda, out.cost),
        Some(fit) => format!(
            "softmax refit (lambda {}, {} L-BFGS iterations, gradient norm {:.1e}): cross-entropy {:.5}",
            out.lambda, fit.iterations, fit.grad_norm, fit.loss
        ),
    };
    let _ = writeln!(
        md,
        "- after {what}, {}: train error {:.4}, test error {:.4} ({:.1} s)",
        proj.decision.name(),
        proj.error_rate(phi, y),
        proj.error_rate(data.test_phi, data.test_labels),
        t0.elapsed().as_secs_f64()
    );
    Ok(md)
}
