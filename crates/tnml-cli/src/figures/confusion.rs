//! `confusion-<split>`: the heat map of an evaluation's mistakes, from `confusion-<split>.json`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tnml_plot::Heatmap;

use super::sink::Sink;
use crate::confusion::{Confusion, PREFIX};

/// The most classes a confusion matrix read back may have.
const MAX_CLASSES: usize = 1000;

/// One heat map per `confusion-<split>.json` in `run` (a matrix without mistakes is skipped).
pub fn confusions(sink: &mut Sink, run: &Path) -> Result<()> {
    let entries = std::fs::read_dir(run).with_context(|| format!("reading {}", run.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(split) = name.strip_prefix(PREFIX).and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        let path = entry.path();
        let c: Confusion = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        let labels = c.counts.len();
        if labels == 0 || labels > MAX_CLASSES || c.counts.iter().any(|r| r.len() != labels) {
            bail!(
                "{}: not a square confusion matrix of at most {MAX_CLASSES} classes",
                path.display()
            );
        }
        let (n, wrong) = c.totals();
        if wrong == 0 {
            continue; // nothing to draw: every cell off the diagonal is 0
        }
        let map = Heatmap {
            title: format!(
                "confusion ({split}, {wrong} of {n} wrong): % of each true label predicted as each other"
            ),
            x_label: "predicted label".into(),
            y_label: "true label".into(),
            values: c.error_shares(),
            x_values: (0..labels).map(|l| l as f64).collect(),
            first_row: 0.0,
        };
        sink.heatmap(&map, &format!("confusion-{split}"))?;
    }
    Ok(())
}
