//! The run-directory writes of both MPS trainers: a checkpoint after every sweep or epoch, the
//! last good model after a failure, the start's truncation report.

use anyhow::Result;
use serde::Serialize;
use tnml_mps::MpsClassifier;

use crate::cluster::Cluster;
use crate::run_dir::{atomic_write, RunDir};
use crate::run_files;

/// What a truncation dropped, bond by bond, as JSON (run directories record every truncation).
pub(super) fn truncation_json(report: &tnml_core::TruncReport) -> serde_json::Value {
    serde_json::json!({
        "total_discarded_weight": report.total_discarded_weight(),
        "bonds": report.bonds.iter().map(|t| serde_json::json!({
            "bond": t.bond,
            "kept": t.kept,
            "full_rank": t.full_rank,
            "discarded_weight": t.discarded_weight,
        })).collect::<Vec<_>>(),
    })
}

/// The metadata key of a checkpoint's sweep (or epoch) number.
pub(super) const STEP_TAG: &str = "tnml.step";

/// Saves the model of sweep (or epoch) `step` (atomically, replacing the previous one) and
/// appends `record` to the metrics. `TNML_FAULT=mps-save:<step>` makes the save of that step
/// fail, as a full disk would (the test hook of the failed-save path).
pub(super) fn checkpoint<T: Serialize>(
    run: &mut RunDir,
    model: &MpsClassifier,
    record: &T,
    step: usize,
) -> Result<()> {
    if std::env::var("TNML_FAULT").is_ok_and(|f| f == format!("mps-save:{step}")) {
        anyhow::bail!("TNML_FAULT: simulated write failure at step {step}");
    }
    // the model says which sweep (epoch) it is: a kill between this rename and the metrics
    // line leaves a model one step ahead of metrics.jsonl, and --resume trusts the model
    let bytes = model.to_safetensors_tagged(&[(STEP_TAG, step.to_string())])?;
    atomic_write(&run.path().join(run_files::MODEL), &bytes)?;
    run.log_metric(record)
}

/// Why a save failed and what is kept: the run stops at the first failed save.
pub(super) fn save_failed(e: anyhow::Error, run: &RunDir, step: &str, saved: Option<usize>) -> anyhow::Error {
    let kept = match saved {
        Some(s) => format!(
            "the last good model is {} ({step} {s})",
            run.path().join(run_files::MODEL).display()
        ),
        None => "no model was saved".to_string(),
    };
    e.context(format!("saving the model failed; training stopped; {kept}"))
}

/// After training: on a training error keep the model (at its last good state) as
/// `model-last-good.safetensors` and say so; then report a failure to write the run directory.
/// Rank 0 (`run` is `Some`) writes. Under several ranks a training error is the same on every
/// rank (it follows from summed values), so the others wait until rank 0 has written the model
/// and then for rank 0 to end the job with its message.
pub(super) fn finish_training(
    run: Option<&RunDir>,
    cluster: &Cluster,
    model: &MpsClassifier,
    result: std::result::Result<(), tnml_mps::MpsError>,
    write_failure: Option<anyhow::Error>,
) -> Result<()> {
    if let Err(e) = result {
        let kept = match run {
            Some(run) => {
                let path = run.path().join(run_files::MODEL_LAST_GOOD);
                let written = atomic_write(&path, &model.to_safetensors()?);
                cluster.barrier();
                written?;
                path
            }
            None => {
                cluster.barrier();
                cluster.wait_for_root_to_end_the_job();
            }
        };
        return Err(anyhow::Error::from(e).context(format!(
            "training stopped; the last good model is in {}",
            kept.display()
        )));
    }
    match write_failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
