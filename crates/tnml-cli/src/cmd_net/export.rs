//! `tnml net export`: a trained network's weights as a PyTorch state_dict in safetensors
//! (layout in [`tnml_nn::torch_layout`]; the same file a run writes as `model.safetensors`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use tnml_nn::checkpoint;

use crate::runtime::device;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// PyTorch's state_dict layout: `fc1.weight` `(out, in)`, convolutions `(out, in, kh, kw)`,
    /// MPO cores `fc1.cores.K` `[left, in, out, right]` plus their dense `fc1.weight`.
    Torch,
}

/// Arguments of `tnml net export`.
#[derive(Debug, Args)]
pub struct NetExportArgs {
    /// A checkpoint directory (`<run>/checkpoint`) or a run directory.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Layout of the file.
    #[arg(long, value_enum, default_value = "torch")]
    pub format: ExportFormat,
    /// Output file (.safetensors), written atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists (never a run's model or records).
    #[arg(long)]
    pub force: bool,
}

pub(super) fn export(args: &NetExportArgs) -> Result<()> {
    if args.out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        anyhow::bail!("--out {}: give a .safetensors file", args.out.display());
    }
    crate::run_dir::check_output(&args.out, args.force)?;
    let dev = device();
    let ck = checkpoint::resolve_dir(&args.checkpoint);
    let (header, net) = checkpoint::load(&ck, &dev)?;
    let tensors = tnml_nn::torch_layout::state_dict(&net)?;
    let bytes = tnml_nn::torch_layout::serialize(&tensors, &header.net, &args.out)?;
    crate::run_dir::atomic_write(&args.out, &bytes)?;
    println!(
        "wrote {} ({:?} layout, epoch {}): {}",
        args.out.display(),
        args.format,
        header.epoch,
        tensors
            .iter()
            .map(|t| format!("{} {:?}", t.name, t.shape))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "input: {}",
        tnml_nn::torch_layout::input_description(header.net.arch)
    );
    Ok(())
}
