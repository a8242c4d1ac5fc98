//! `tnml mps predict`: per image the label, the predicted label and the scores `f^l(x)` of a saved
//! model, as CSV or safetensors, so that mistakes can be inspected and two models compared image
//! by image elsewhere (pandas, NumPy, PyTorch).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::eval::{evaluate, Evaluated, ModelOnImages};
use crate::predictions::{f32_bytes, f64_bytes, i64_bytes, report_written, Format};
use crate::run_dir::atomic_write;

/// Arguments of `tnml mps predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub on: ModelOnImages,
    /// Output file: `.csv` (columns index, label, predicted, f_0 .. f_{L-1}, log_scale) or
    /// `.safetensors` (`label` and `predicted` as I64 `[n]`, `scores` F64 `[n, L]`,
    /// `scores_normalized` F32 `[n, L]`, `log_scale` F64 `[n]`). `f_l = scores_normalized_l *
    /// exp(log_scale)`; on long chains `f` can leave the f64 range, the normalized scores never do.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists (never a run's model or records).
    #[arg(long)]
    pub force: bool,
}

pub(super) fn predict(args: &PredictArgs) -> Result<()> {
    let format = Format::of(&args.out)?;
    crate::run_dir::check_output(&args.out, args.force)?;
    let Evaluated {
        model,
        labels,
        scores,
        ..
    } = evaluate(&args.on)?;
    let predicted = scores.predictions();
    let big_l = model.num_labels();
    let f: Vec<f64> = scores
        .values
        .chunks_exact(big_l)
        .zip(&scores.log_scale)
        .flat_map(|(row, s)| row.iter().map(move |&v| f64::from(v) * s.exp()))
        .collect();
    let bytes = match format {
        Format::Csv => csv(&labels, &predicted, &f, &scores.log_scale, big_l).into_bytes(),
        Format::Safetensors => {
            let (lab, pred) = (i64_bytes(&labels), i64_bytes(&predicted));
            let scores_bytes = f64_bytes(&f);
            let norm = f32_bytes(&scores.values);
            let scale = f64_bytes(&scores.log_scale);
            let n = labels.len();
            let views = [
                ("label", TensorView::new(Dtype::I64, vec![n], &lab)?),
                ("predicted", TensorView::new(Dtype::I64, vec![n], &pred)?),
                (
                    "scores",
                    TensorView::new(Dtype::F64, vec![n, big_l], &scores_bytes)?,
                ),
                (
                    "scores_normalized",
                    TensorView::new(Dtype::F32, vec![n, big_l], &norm)?,
                ),
                ("log_scale", TensorView::new(Dtype::F64, vec![n], &scale)?),
            ];
            let meta = std::collections::HashMap::from([
                ("model".to_string(), args.on.model.display().to_string()),
                ("decision".to_string(), model.decision().name().to_string()),
            ]);
            safetensors::serialize(views, Some(meta))?
        }
    };
    atomic_write(&args.out, &bytes)?;
    report_written(&labels, &predicted, &args.out, model.decision().name());
    Ok(())
}

/// The CSV table: one row per image.
fn csv(labels: &[usize], predicted: &[usize], f: &[f64], log_scale: &[f64], big_l: usize) -> String {
    let mut out = String::from("index,label,predicted");
    for l in 0..big_l {
        let _ = write!(out, ",f_{l}");
    }
    out.push_str(",log_scale\n");
    for (i, ((label, pred), (row, s))) in labels
        .iter()
        .zip(predicted)
        .zip(f.chunks_exact(big_l).zip(log_scale))
        .enumerate()
    {
        let _ = write!(out, "{i},{label},{pred}");
        for v in row {
            let _ = write!(out, ",{v:e}");
        }
        let _ = writeln!(out, ",{s}");
    }
    out
}
