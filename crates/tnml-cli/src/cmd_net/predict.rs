//! `tnml net predict`: per image the label, the predicted label, the logits and the softmax
//! probabilities of a trained network, as CSV or safetensors.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tnml_nn::checkpoint;
use tnml_nn::data::{load_split, Subset};
use tnml_nn::train::logits;

use crate::args::{DataLocation, SplitArg};
use crate::predictions::{f32_bytes, i64_bytes, report_written, Format};
use crate::run_dir::atomic_write;
use crate::runtime::device;

/// Arguments of `tnml net predict`.
#[derive(Debug, Args)]
pub struct NetPredictArgs {
    /// A checkpoint directory (`<run>/checkpoint`) or a run directory.
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub data: DataLocation,
    /// Which split.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Use at most this many images (the first ones).
    #[arg(long = "test-limit", visible_alias = "limit")]
    pub limit: Option<usize>,
    /// Output file: `.csv` (columns index, label, predicted, logit_0..9, p_0..9) or
    /// `.safetensors` (`label`, `predicted` I64 `[n]`; `logits`, `probabilities` F32 `[n, 10]`).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists (never a run's model or records).
    #[arg(long)]
    pub force: bool,
}

/// Softmax of each row of 10 logits (shifted by the row's maximum).
fn softmax(logits: &[f32]) -> Vec<f32> {
    logits
        .chunks_exact(10)
        .flat_map(|row| {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
            let z: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / z)
        })
        .collect()
}

/// The index of the largest logit of each row (the first on ties, as `argmax`).
pub(super) fn argmax_rows(logits: &[f32]) -> Vec<usize> {
    logits
        .chunks_exact(10)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                )
                .0
        })
        .collect()
}

pub(super) fn predict(args: &NetPredictArgs) -> Result<()> {
    let format = Format::of(&args.out)?;
    crate::run_dir::check_output(&args.out, args.force)?;
    if args.limit == Some(0) {
        anyhow::bail!("--test-limit 0: there is nothing to predict; give at least 1 image");
    }
    let dev = device();
    let ck = checkpoint::resolve_dir(&args.checkpoint);
    let (header, net) = checkpoint::load(&ck, &dev)?;
    let (dataset, dir, _) = args.data.resolve();
    let subset = args.limit.map_or(Subset::All, Subset::First);
    let data = load_split(dataset, &dir, args.split.into(), subset, header.net.arch)?;
    let z = logits(&net, &data, 1000, &dev);
    let p = softmax(&z);
    let predicted = argmax_rows(&z);
    let labels: Vec<usize> = data.labels.iter().map(|&l| l as usize).collect();
    let n = labels.len();
    let bytes = match format {
        Format::Csv => {
            let mut s = String::from("index,label,predicted");
            for k in 0..10 {
                let _ = write!(s, ",logit_{k}");
            }
            for k in 0..10 {
                let _ = write!(s, ",p_{k}");
            }
            s.push('\n');
            for i in 0..n {
                let _ = write!(s, "{i},{},{}", labels[i], predicted[i]);
                for v in z[i * 10..(i + 1) * 10].iter().chain(&p[i * 10..(i + 1) * 10]) {
                    let _ = write!(s, ",{v:e}");
                }
                s.push('\n');
            }
            s.into_bytes()
        }
        Format::Safetensors => {
            let (lab, pred, zb, pb) = (
                i64_bytes(&labels),
                i64_bytes(&predicted),
                f32_bytes(&z),
                f32_bytes(&p),
            );
            let views = [
                ("label", TensorView::new(Dtype::I64, vec![n], &lab)?),
                ("predicted", TensorView::new(Dtype::I64, vec![n], &pred)?),
                ("logits", TensorView::new(Dtype::F32, vec![n, 10], &zb)?),
                ("probabilities", TensorView::new(Dtype::F32, vec![n, 10], &pb)?),
            ];
            let meta = std::collections::HashMap::from([
                ("checkpoint".to_string(), ck.display().to_string()),
                (
                    "split".to_string(),
                    tnml_data::Split::from(args.split).name().to_string(),
                ),
            ]);
            safetensors::serialize(views, Some(meta))?
        }
    };
    atomic_write(&args.out, &bytes)?;
    report_written(&labels, &predicted, &args.out, "argmax of the logits");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_argmax_takes_the_first_maximum() {
        let z = [
            0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, //
            1000.0, 1000.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1000.0,
        ];
        let p = softmax(&z);
        for row in p.chunks_exact(10) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!((p[2] / p[1] - 1f32.exp()).abs() < 1e-5);
        assert!((p[10] - 0.5).abs() < 1e-6 && p[19] == 0.0);
        assert_eq!(argmax_rows(&z), vec![2, 0]);
    }
}
