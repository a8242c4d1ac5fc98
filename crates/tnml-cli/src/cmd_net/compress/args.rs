//! The options of `tnml net compress`, and how they read.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tnml_nn::MpoLayers;

use crate::args::Seed;
use crate::net::config::ModelArg;
use crate::net::NetData;

/// Arguments of `tnml net compress`.
#[derive(Debug, Args, Serialize)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["checkpoint", "from_torch"])))]
pub struct NetCompressArgs {
    /// Checkpoint (or run directory) of a trained dense FC2 or LeNet-5.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// A PyTorch-trained dense model instead: its state_dict saved with
    /// `safetensors.torch.save_file` in the layout of `tnml net export --format torch`
    /// (`fc1.weight` `(out, in)`, `fc1.bias`, convolutions `(out, in, kh, kw)`); say which with --model.
    #[arg(long, value_name = "FILE.safetensors")]
    pub from_torch: Option<PathBuf>,
    /// The architecture of --from-torch's state_dict (read from the file's metadata when tnml wrote it).
    #[arg(long, value_enum, requires = "from_torch")]
    pub model: Option<ModelArg>,
    /// Largest bond dimension kept in every MPO: a number, `full` (every bond at its exact
    /// rank: no cap), or, without the flag, the bond of the modes (Gao's D for the preset, or
    /// the bond in --mpo's specs).
    #[arg(long = "max-bond", value_parser = parse_cap, value_name = "N|full")]
    pub max_bond: Option<BondCap>,
    /// Largest relative discarded weight per bond, sum of dropped s^2 / sum of s^2, in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    pub cutoff: f64,
    /// Modes of each layer as `;`-separated specs (their bond is the upper limit); default Gao's.
    #[arg(long)]
    pub mpo: Option<MpoLayers>,
    /// Fine-tuning epochs after compression (Adam).
    #[arg(long, default_value_t = 0)]
    pub finetune_epochs: usize,
    /// Learning rate of the fine-tuning (default 1e-3) or of --auto's retraining (default
    /// 1e-4: a larger step undoes the TT-SVD start in one epoch).
    #[arg(long)]
    pub lr: Option<f64>,
    #[command(flatten)]
    pub data: NetData,
    #[command(flatten)]
    pub seed: Seed,
    /// Choose the bond dimension of every bond of every MPO layer from the dense weights'
    /// spectra: truncate to a growing budget of discarded weight (each layer the bonds where its
    /// spectra fall fastest), retrain --retrain-epochs, and keep going while the validation
    /// accuracy stays within --max-drop of the dense model's. Never looks at the test set.
    #[arg(long, conflicts_with_all = ["max_bond", "cutoff", "finetune_epochs"])]
    pub auto: bool,
    /// With --auto: accuracy points (of 100) the validation accuracy may lose (default 0.5).
    #[arg(long, requires = "auto")]
    pub max_drop: Option<f64>,
    /// With --auto: training images held out (seeded) as the validation split.
    #[arg(long, default_value_t = 5000, requires = "auto")]
    pub validation: usize,
    /// With --auto: epochs of retraining (Adam, --lr) after each truncation.
    #[arg(long, default_value_t = 1, requires = "auto")]
    pub retrain_epochs: usize,
    /// With --auto: the baseline, one bond dimension for all bonds of Gao's modes, for each of
    /// these values (truncated and retrained the same way), e.g. 2,4,8,16,32.
    #[arg(long, value_delimiter = ',', requires = "auto")]
    pub uniform_bonds: Vec<usize>,
    /// Run directory (default runs/net-compress-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `--max-bond` of `net compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BondCap {
    /// No cap: every bond keeps its exact rank (up to --cutoff).
    Full,
    /// At most this many.
    Bond(usize),
}

fn parse_cap(text: &str) -> std::result::Result<BondCap, String> {
    if text.eq_ignore_ascii_case("full") {
        return Ok(BondCap::Full);
    }
    match text.parse::<usize>() {
        Ok(0) => Err("a bond dimension of 0 keeps nothing: give at least 1 (or full)".into()),
        Ok(n) => Ok(BondCap::Bond(n)),
        Err(_) => Err(format!(
            "{text:?}: give a bond dimension (a positive integer) or full"
        )),
    }
}

impl NetCompressArgs {
    /// The truncation: `full` is a cap above every exact rank (the exact bond of a layer is at
    /// most its matrix's smaller side), no flag leaves the cap to the modes.
    pub(super) fn trunc_params(&self) -> anyhow::Result<tnml_core::TruncParams> {
        let cap = match self.max_bond {
            None => None,
            Some(BondCap::Bond(n)) => Some(n),
            Some(BondCap::Full) => Some(usize::MAX - 1),
        };
        let p = tnml_core::TruncParams::new(cap, self.cutoff);
        p.validate()?;
        Ok(p)
    }
}
