//! `tnml net compress`: a trained dense model's fully connected layers to MPOs by TT-SVD, with
//! the accuracy before and after, and optional fine-tuning.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::Args;
use serde::Serialize;
use tnml_data::Split;
use tnml_nn::checkpoint::{self, CheckpointHeader};
use tnml_nn::train::{evaluate, TrainConfig};
use tnml_nn::{Arch, MpoLayers, Net, NetConfig, NormKind, WeightInit};

use crate::args::Seed;
use crate::net::config::ModelArg;
use crate::net::report::describe;
use crate::net::{EpochPrinter, NetData};
use crate::run_dir::RunDir;
use crate::runtime::device;

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
    #[arg(long = "max-bond", alias = "bond", value_parser = parse_cap, value_name = "N|full")]
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
    fn trunc_params(&self) -> Result<tnml_core::TruncParams> {
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

pub(crate) fn compress(args: &NetCompressArgs) -> Result<()> {
    if args.auto {
        return super::auto::compress_auto(args);
    }
    if let (Some(lr), 0) = (args.lr, args.finetune_epochs) {
        bail!("--lr {lr} is the fine-tuning's (or --auto's retraining's) learning rate: give --finetune-epochs N, or leave it out");
    }
    let dev = device();
    let (header, dense, ck) = load_source(args, &dev)?;
    let arch = header.net.arch;
    if header.net.mpo.is_some() {
        bail!(
            "{} is already an MPO model; compress takes a dense checkpoint",
            ck.display()
        );
    }
    if matches!(arch, Arch::Vgg16 | Arch::Vgg19 | Arch::Resnet56) {
        bail!(
            "compress handles models whose replaced layers are all fully connected (FC2, LeNet-5, the talk model, ResNet-20, DenseNet-40); {arch:?}'s replaced layers include convolutions"
        );
    }
    let params = args.trunc_params()?;
    let modes = args.mpo.as_ref().unwrap_or(&MpoLayers::Gao).resolve(arch, None)?;
    let test = args.data.load(Split::Test, arch, args.seed.seed)?;
    let (loss0, acc0) = evaluate(&dense, &test, 1000, &dev);
    eprintln!(
        "dense model: test accuracy {:.2}%, loss {:.4}",
        100.0 * acc0,
        loss0
    );
    let tnml_nn::compress::Compressed {
        net,
        config: cfg,
        reports,
    } = tnml_nn::compress::compress_dense(&dense, &header.net, &modes, &params, &dev)?;
    // the model file's bytes before the run directory exists: a model that cannot be written
    // (cores past f32's range) leaves nothing behind
    let model_bytes =
        tnml_nn::torch_layout::to_safetensors(&net, &cfg, std::path::Path::new("model.safetensors"))?;
    let mut run = RunDir::create(args.out.as_deref(), "net-compress")?;
    for (name, r) in &reports {
        eprintln!(
            "  {name}: bonds {:?}, discarded weight {:.3e}",
            r.bonds.iter().map(|b| b.kept).collect::<Vec<_>>(),
            r.total_discarded_weight()
        );
    }
    let (description, report) = describe(&net, &cfg);
    eprint!("{description}");
    let (loss1, acc1) = evaluate(&net, &test, 1000, &dev);
    eprintln!(
        "after TT-SVD: test accuracy {:.2}%, loss {:.4}",
        100.0 * acc1,
        loss1
    );
    run.write_config(&serde_json::json!({
        "command": "net compress",
        "tnml_version": env!("CARGO_PKG_VERSION"),
        "source": ck,
        "net": cfg,
        "args": args,
    }))?;
    if let Some(r) = &report {
        run.write_json("compression.json", r)?;
    }
    let mut summary = format!(
        "# net compress\n\n```\n{description}```\n\n| stage | test accuracy | test loss |\n|---|---|---|\n| dense | {:.2}% | {loss0:.4} |\n| TT-SVD | {:.2}% | {loss1:.4} |\n",
        100.0 * acc0,
        100.0 * acc1
    );
    let final_net = net;
    if args.finetune_epochs > 0 {
        let tc = TrainConfig::adam(args.finetune_epochs, 100, args.lr.unwrap_or(1e-3), args.seed.seed);
        let train_set = args.data.load(Split::Train, arch, args.seed.seed)?;
        let header = CheckpointHeader::new(cfg.clone(), Some(tc.clone()));
        let mut printer = EpochPrinter::new(&mut run, header, 1);
        let optim = tc.build_optimizer();
        let (_, history) = tnml_nn::train::train(
            final_net,
            optim,
            &tc,
            &train_set,
            Some(&test),
            1,
            &dev,
            &mut printer,
        )?;
        if let Some(last) = history.last() {
            let _ = writeln!(
                summary,
                "| + {} epochs fine-tuning | {:.2}% | {:.4} |",
                last.epoch,
                100.0 * last.test_acc.unwrap_or(0.0),
                last.test_loss.unwrap_or(f64::NAN)
            );
        }
    } else {
        let header = CheckpointHeader::new(cfg.clone(), None);
        checkpoint::save(&run.path().join("checkpoint"), &header, &final_net, None)?;
        run.write_file("model.safetensors", &model_bytes)?;
    }
    run.write_summary(&summary)?;
    eprintln!("run directory {}", run.path().display());
    Ok(())
}
