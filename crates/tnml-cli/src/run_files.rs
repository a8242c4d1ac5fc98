//! The files of a run directory: their names and the typed records the figures and the resumes
//! read back. A command writes through [`crate::run_dir::RunDir`] under these names; `tnml plot`
//! and `--resume` read the same names, so a file is named once.

use serde::{Deserialize, Serialize};

/// Every resolved option and the tnml version (`RunDir::write_config`).
pub const CONFIG: &str = "config.json";
/// One JSON record per sweep (MPS), epoch (networks) or step.
pub const METRICS: &str = "metrics.jsonl";
/// The run's report in Markdown.
pub const SUMMARY: &str = "summary.md";
/// The trained model (MPS sites, or a network's PyTorch state_dict).
pub const MODEL: &str = "model.safetensors";
/// The MPS model before the sweep that diverged.
pub const MODEL_LAST_GOOD: &str = "model-last-good.safetensors";
/// The MPS model after the projection and softmax refit.
pub const MODEL_REFIT: &str = "model-refit.safetensors";
/// MPO cores written by `mpo compress`.
pub const MPO: &str = "mpo.safetensors";
/// One entanglement record per layer, bond and epoch ([`tnml_nn::entangle::BondRecord`]).
pub const ENTANGLEMENT: &str = "entanglement.jsonl";
/// Entropy of randomly initialised MPO layers, the reference line of the entropy figures.
pub const ENTANGLEMENT_BASELINE: &str = "entanglement-baseline.json";
/// `layer,max_bond,relative_error` rows: truncation error against the bond dimension.
pub const TRUNCATION: &str = "truncation.csv";
/// The bonds an automatic compression chose, per layer ([`BondChoiceRecord`]).
pub const BOND_CHOICES: &str = "bond-choices.json";
/// The accuracy-against-parameters path of `net compress --auto` ([`PathPoint`] per line).
pub const COMPRESSION_PATH: &str = "compression-path.jsonl";
/// Every resume of the run, one line each.
pub const RESUMES: &str = "resumes.jsonl";

/// `config.json`: the command, the tnml version that wrote it, the resolved command-line options
/// (what `--resume` compares against; absent for commands without a resumable run) and what
/// the command adds (data set, sizes, threads, the model's configuration...) at the top level.
#[derive(Debug, Serialize)]
pub struct RunConfig<'a, A: Serialize, F: Serialize> {
    /// The command as typed (`mps train`, `net compress --auto`).
    pub command: &'a str,
    /// This binary's version.
    pub tnml_version: &'static str,
    /// The resolved options of the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<&'a A>,
    /// The command's own facts, flattened into the top level.
    #[serde(flatten)]
    pub facts: F,
}

impl<'a, A: Serialize, F: Serialize> RunConfig<'a, A, F> {
    /// The configuration of `command` with its options and facts (a `json!` object, or a
    /// struct), stamped with this binary's version.
    pub fn new(command: &'a str, args: Option<&'a A>, facts: F) -> Self {
        Self {
            command,
            tnml_version: env!("CARGO_PKG_VERSION"),
            args,
            facts,
        }
    }
}

/// The error rates of one MPS sweep or gradient epoch, as the figures read them from
/// [`METRICS`] (the trainers' records have more fields; only these are read back).
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorRates {
    /// 1-based sweep (sweep trainer) or epoch (gradient trainer).
    #[serde(alias = "sweep", alias = "epoch")]
    pub step: f64,
    /// Training error rate in [0, 1].
    pub train_error: f64,
    /// Test error rate, when the test set was scored.
    #[serde(default)]
    pub test_error: Option<f64>,
    /// Validation error rate, when a split was held out.
    #[serde(default)]
    pub validation_error: Option<f64>,
}

/// The bonds chosen for one layer, with the spectra's entropy that explains them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BondChoiceRecord {
    /// Layer or tensor name.
    pub layer: String,
    /// von Neumann entropy per bond of the exact MPO (nats).
    pub entropy: Vec<f64>,
    /// Bond dimensions of the exact MPO (its ranks).
    pub exact_bond_dims: Vec<usize>,
    /// Bond dimensions chosen per bond.
    pub chosen: Vec<usize>,
    /// The uniform baseline's bond dimensions, when one was found.
    pub uniform: Option<Vec<usize>>,
    /// The chosen MPO was not smaller than the matrix, so the matrix was kept (`chosen` is
    /// what the MPO would have had). Absent in files written before it was recorded.
    #[serde(default)]
    pub kept_dense: bool,
}

/// One point of a compression path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathPoint {
    /// `auto` (bonds per bond from a budget) or `uniform` (one bond dimension).
    pub kind: String,
    /// The budget or the bond dimension, for reading.
    pub label: String,
    /// Parameters of the MPO layers.
    pub params: usize,
    /// Validation accuracy after the retraining.
    pub val_acc: f64,
}
