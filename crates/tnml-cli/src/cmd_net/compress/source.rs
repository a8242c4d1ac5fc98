//! The dense model `net compress` starts from: a tnml checkpoint or a PyTorch state_dict.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use tnml_nn::checkpoint::{self, CheckpointHeader};
use tnml_nn::{Arch, Net, NetConfig, NormKind, WeightInit};

use super::args::NetCompressArgs;

/// The model to compress: a tnml checkpoint (`--checkpoint`), or a PyTorch state_dict
/// (`--from-torch`, architecture from `--model` or the file's metadata) loaded strictly into the
/// dense model; with the path it came from.
///
/// # Errors
/// A bad checkpoint or file, a state_dict that does not fit the architecture, no architecture.
pub(super) fn load_source(args: &NetCompressArgs, dev: &Device) -> Result<(CheckpointHeader, Net, PathBuf)> {
    let Some(file) = &args.from_torch else {
        let ck = checkpoint::resolve_dir(
            args.checkpoint
                .as_deref()
                .context("--checkpoint or --from-torch is needed")?,
        );
        let (header, net) = checkpoint::load(&ck, dev)?;
        if let Some(m) = args.model {
            bail!(
                "--model {m:?} names the architecture of a --from-torch state_dict; {} carries its own ({:?}): leave --model out",
                ck.display(),
                header.net.arch
            );
        }
        return Ok((header, net, ck));
    };
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let stored = tnml_nn::torch_layout::stored_config(&bytes, &name)?;
    let config = match (args.model, stored) {
        (Some(m), stored) => {
            let arch = Arch::from(m);
            if let Some(s) = stored.as_ref().filter(|s| s.arch != arch) {
                bail!(
                    "--model {m:?}: {name} holds a {:?} (its metadata {})",
                    s.arch,
                    tnml_nn::torch_layout::CONFIG_KEY
                );
            }
            match stored {
                // the file's own config (its norm layers included)
                Some(s) => s,
                None => NetConfig {
                    arch,
                    mpo: None,
                    norm: norm_in_state_dict(&bytes, &name)?,
                    init: WeightInit::He,
                    seed: 0,
                    pairing: None,
                },
            }
        }
        (None, Some(s)) => s,
        (None, None) => {
            bail!("--from-torch {name}: say which architecture it is with --model fc2 or --model lenet5")
        }
    };
    let net = tnml_nn::torch_layout::load_state_dict(config.init(dev)?, &bytes, &name)?;
    Ok((CheckpointHeader::new(config, None), net, file.clone()))
}

/// The norm layers a state_dict without tnml's metadata holds, read off its tensor names as
/// `net export` writes them (and PyTorch's `nn.BatchNorm1d` / `nn.LayerNorm` name them):
/// `*.running_mean` means BatchNorm, `norm*.weight` without running statistics LayerNorm.
fn norm_in_state_dict(bytes: &[u8], file: &str) -> Result<NormKind> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("{file}: not a valid safetensors file ({e})"))?;
    let names: Vec<String> = meta.tensors().into_keys().collect();
    Ok(if names.iter().any(|n| n.ends_with(".running_mean")) {
        NormKind::Batch
    } else if names
        .iter()
        .any(|n| n.starts_with("norm") && n.ends_with(".weight"))
    {
        NormKind::Layer
    } else {
        NormKind::None
    })
}
