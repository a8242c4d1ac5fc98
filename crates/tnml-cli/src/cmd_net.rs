//! `tnml net train | eval | compress`: MPO-Nets (Gao et al. 2020) and their dense baselines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tnml_core::TruncParams;
use tnml_data::transform::{shuffled_indices, CIFAR10_MEAN, CIFAR10_STD};
use tnml_data::{load, Images, Split};
use tnml_nn::checkpoint::{self, CheckpointHeader};
use tnml_nn::models::CompressionReport;
use tnml_nn::train::{
    evaluate, EpochRecord, LabeledImages, LrSchedule, OptimizerKind, TrainConfig, TrainObserver,
};
use tnml_nn::{Arch, MpoSpec, Net, NetConfig, NormKind, WeightInit};

use crate::cmd_data::DataLocation;
use crate::run_dir::RunDir;

/// `tnml net` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Train FC2, LeNet-5 or VGG, dense or with MPO layers; checkpoints every epoch.
    Train(NetTrainArgs),
    /// Test accuracy and loss of a checkpoint.
    Eval(NetEvalArgs),
    /// Compress a trained dense model's fully connected layers into MPOs by TT-SVD, report the
    /// accuracy before and after, optionally fine-tune.
    Compress(NetCompressArgs),
}

/// Architectures on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelArg {
    /// 784-256-10 perceptron (MNIST).
    Fc2,
    /// LeNet-5 (MNIST).
    Lenet5,
    /// VGG-16, configuration C (CIFAR-10).
    Vgg16,
    /// VGG-19 (CIFAR-10).
    Vgg19,
    /// The seed talk's model: MPO 1024 -> 1024 (default (4,4,4,4,4), bond 12), ReLU, dense
    /// 1024 -> 10, on MNIST zero-padded to 32x32.
    Talk,
}

impl From<ModelArg> for Arch {
    fn from(m: ModelArg) -> Self {
        match m {
            ModelArg::Fc2 => Arch::Fc2,
            ModelArg::Lenet5 => Arch::Lenet5,
            ModelArg::Vgg16 => Arch::Vgg16,
            ModelArg::Vgg19 => Arch::Vgg19,
            ModelArg::Talk => Arch::Talk,
        }
    }
}

/// Optimizer on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimArg {
    /// Stochastic gradient descent (with --momentum, --nesterov).
    Sgd,
    /// Adam.
    Adam,
}

/// Data options of the net commands.
#[derive(Debug, Args, Serialize)]
pub struct NetData {
    #[command(flatten)]
    #[serde(skip)]
    pub location: DataLocation,
    /// Use at most this many training images (a seeded random subset).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use at most this many test images (the first ones).
    #[arg(long)]
    pub test_limit: Option<usize>,
}

/// Arguments of `tnml net train`.
#[derive(Debug, Args, Serialize)]
pub struct NetTrainArgs {
    /// Architecture.
    #[arg(long, value_enum, default_value = "fc2")]
    pub model: ModelArg,
    /// MPO layers: `gao` (Gao et al.'s shapes), or one spec per replaceable layer separated by
    /// `;` (`M^{4,4,4,4}_{4,7,7,4}(16);4,4,4,4->1,1,10,1:4`). Omit for the dense model.
    #[arg(long)]
    pub mpo: Option<String>,
    /// Talk model: MPO site k takes input axis PAIRING[k] (a permutation, e.g. 4,3,2,1,0 pairs the
    /// least significant pixel digit with the most significant output digit).
    #[arg(long, value_delimiter = ',')]
    pub pairing: Vec<usize>,
    /// Bond dimension D for `--mpo gao`: FC2's first layer (Gao sweeps 2..22; default 16), every
    /// layer for LeNet-5 and VGG.
    #[arg(long)]
    pub bond: Option<usize>,
    /// Norm after hidden fully connected layers: none, layer, batch.
    #[arg(long, default_value = "none")]
    pub norm: String,
    /// Initial variance of the (reconstructed) weights: he, glorot, lecun, or a standard deviation.
    #[arg(long, default_value = "he")]
    pub init: String,
    #[command(flatten)]
    pub data: NetData,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimArg,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// SGD momentum (0 = plain SGD).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    pub nesterov: bool,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate decay: none, exp:GAMMA (per epoch), step:EVERY:GAMMA.
    #[arg(long, default_value = "none")]
    pub lr_decay: String,
    /// Augment each epoch: random crop (pad 4) + flip for CIFAR-10 (default on), shifts of up to 2
    /// pixels for digits (default off).
    #[arg(long)]
    pub augment: Option<bool>,
    /// Seed of initialization, subset, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Record the entanglement of every MPO layer every K epochs (0 = never) into
    /// entanglement.jsonl, with a random-initialization baseline; plots go to plots/.
    #[arg(long, default_value_t = 1)]
    pub entangle_every: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run directory (default runs/net-train-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint (model, optimizer, epoch);
    /// --epochs may raise the total.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
}

/// Arguments of `tnml net eval`.
#[derive(Debug, Args)]
pub struct NetEvalArgs {
    /// A checkpoint directory (`<run>/checkpoint`) or a run directory.
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub data: NetData,
}

/// Arguments of `tnml net compress`.
#[derive(Debug, Args, Serialize)]
pub struct NetCompressArgs {
    /// Checkpoint (or run directory) of a trained dense FC2 or LeNet-5.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Maximum bond dimension of every MPO (the modes are Gao's, or --mpo's).
    #[arg(long)]
    pub bond: Option<usize>,
    /// Relative discarded weight allowed per bond (sum of dropped s^2 / sum of s^2).
    #[arg(long, default_value_t = 0.0)]
    pub cutoff: f64,
    /// Modes of each layer as `;`-separated specs (their bond is the upper limit); default Gao's.
    #[arg(long)]
    pub mpo: Option<String>,
    /// Fine-tuning epochs after compression (Adam).
    #[arg(long, default_value_t = 0)]
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[command(flatten)]
    pub data: NetData,
    /// Seed of fine-tuning.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (default runs/net-compress-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs a `tnml net` subcommand.
pub fn run(cmd: &NetCommand) -> Result<()> {
    match cmd {
        NetCommand::Train(a) => train(a),
        NetCommand::Eval(a) => eval(a),
        NetCommand::Compress(a) => compress(a),
    }
}

/// The training device: burn's flex CPU backend, or GPU 0 when built with `--features cuda`
/// and `TNML_DEVICE=cuda` is set (the CUDA path is compiled from crates only and needs the
/// driver and libnvrtc at run time; it is not exercised by the tests).
pub fn device() -> burn::tensor::Device {
    #[cfg(feature = "cuda")]
    if std::env::var("TNML_DEVICE").as_deref() == Ok("cuda") {
        return burn::tensor::Device::cuda(0).autodiff();
    }
    burn::tensor::Device::flex().autodiff()
}

/// Train and test data as the model wants them (CIFAR normalized per channel).
pub fn load_data(data: &NetData, arch: Arch, seed: u64) -> Result<(LabeledImages, LabeledImages)> {
    let (dataset, dir, _) = data.location.resolve();
    let mut out = Vec::new();
    for (split, limit) in [(Split::Train, data.train_limit), (Split::Test, data.test_limit)] {
        let mut set = load(dataset, &dir, split)?;
        if let Some(n) = limit {
            if n == 0 {
                bail!("--{}-limit must be at least 1", split.name());
            }
            if split == Split::Train {
                let idx = shuffled_indices(set.len(), seed);
                let take: Vec<usize> = idx[..n.min(set.len())].to_vec();
                let size = set.image_size();
                set.images = take
                    .iter()
                    .flat_map(|&i| set.images[i * size..(i + 1) * size].to_vec())
                    .collect();
                set.labels = take.iter().map(|&i| set.labels[i]).collect();
            } else {
                set = set.take(n);
            }
        }
        let mut images = Images::from_set(&set);
        let [c, h, w] = arch.input_shape();
        if (c, h, w) == (1, 32, 32) && images.channels == 1 && (images.height, images.width) == (28, 28) {
            images = images.pad_to(32, 32)?; // the talk model: MNIST zero-padded to 32x32
        }
        if images.channels == 3 {
            images.normalize(&CIFAR10_MEAN, &CIFAR10_STD)?;
        }
        let li = LabeledImages {
            images,
            labels: set.labels,
        };
        li.check(arch.input_shape(), 10).with_context(|| {
            format!(
                "{} does not fit {:?} (use --dataset mnist for fc2/lenet5, cifar10 for vgg)",
                dataset.display_name(),
                arch
            )
        })?;
        out.push(li);
    }
    let test = out.pop().expect("two splits");
    let train = out.pop().expect("two splits");
    Ok((train, test))
}

fn parse_specs(text: &str, arch: Arch, bond: Option<usize>) -> Result<Vec<MpoSpec>> {
    if text.eq_ignore_ascii_case("gao") {
        return Ok(arch.gao_preset(bond)?);
    }
    if bond.is_some() {
        bail!("--bond applies to --mpo gao; put the bond dimensions into the specs");
    }
    Ok(text
        .split(';')
        .map(MpoSpec::parse)
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

fn parse_schedule(text: &str) -> Result<LrSchedule> {
    let parts: Vec<&str> = text.split(':').collect();
    let num = |s: &str| {
        s.parse::<f64>()
            .with_context(|| format!("--lr-decay {text:?}: {s:?} is not a number"))
    };
    Ok(match parts.as_slice() {
        ["none"] => LrSchedule::Constant,
        ["exp", g] => LrSchedule::Exponential { gamma: num(g)? },
        ["step", every, g] => LrSchedule::Step {
            every: every
                .parse()
                .with_context(|| format!("--lr-decay {text:?}: bad step length"))?,
            gamma: num(g)?,
        },
        _ => bail!("--lr-decay {text:?}: expected none, exp:GAMMA or step:EVERY:GAMMA"),
    })
}

/// One line per layer and the compression ratio, as printed and recorded.
fn describe(net: &Net, cfg: &NetConfig) -> (String, Option<CompressionReport>) {
    let mut text = String::new();
    let tensors = checkpoint::named_tensors(net);
    let total: usize = tensors.values().map(|(s, _)| s.iter().product::<usize>()).sum();
    let _ = writeln!(text, "model {:?}: {} parameters in all", cfg.arch, total);
    // per layer: the second path component (`Lenet5.conv1.weight` -> conv1, `Vgg.features.3...` -> features.3)
    let mut per_layer: Vec<(String, usize)> = Vec::new();
    for (name, (shape, _)) in &tensors {
        let parts: Vec<&str> = name.split('.').collect();
        let layer = match parts.as_slice() {
            [_, "features", i, ..] => format!("features.{i}"),
            [_, l, ..] => l.to_string(),
            _ => name.clone(),
        };
        let n: usize = shape.iter().product();
        match per_layer.iter_mut().find(|(l, _)| *l == layer) {
            Some(e) => e.1 += n,
            None => per_layer.push((layer, n)),
        }
    }
    let _ = writeln!(
        text,
        "  per layer: {}",
        per_layer
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let report = cfg.compression();
    if let Some(r) = &report {
        for l in &r.layers {
            let _ = writeln!(
                text,
                "  {:<8} {:<28} {:>9} params (dense {:>10}, ratio {:.4})",
                l.name,
                l.spec,
                l.mpo_params,
                l.dense_params,
                l.mpo_params as f64 / l.dense_params as f64
            );
        }
        let _ = writeln!(
            text,
            "compression over the replaced layers: rho = {} / {} = {:.4} (1/rho = {:.1})",
            r.mpo_params,
            r.dense_params,
            r.rho,
            1.0 / r.rho
        );
    } else {
        for (name, fin, fout, dense) in cfg.arch.replaceable() {
            let _ = writeln!(text, "  {name:<8} dense {fin} -> {fout}: {dense} params");
        }
    }
    (text, report)
}

struct EpochPrinter<'a> {
    run: &'a mut RunDir,
    header: CheckpointHeader,
    entangle_every: usize,
    bar: Option<ProgressBar>,
    write_error: Option<anyhow::Error>,
}

impl EpochPrinter<'_> {
    fn checkpoint_dir(&self) -> PathBuf {
        self.run.path().join("checkpoint")
    }
}

impl TrainObserver for EpochPrinter<'_> {
    fn on_step(&mut self, epoch: usize, step: usize, steps: usize, loss: f32) {
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(steps as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} steps, loss {msg} ({eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        });
        bar.set_prefix(epoch.to_string());
        bar.set_position(step as u64);
        if step.is_multiple_of(10) || step == steps {
            bar.set_message(format!("{loss:.4}"));
        }
    }

    fn on_epoch(
        &mut self,
        record: &EpochRecord,
        net: &Net,
        optim: &burn::optim::ModuleOptimizer,
    ) -> tnml_nn::Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!(
            "epoch {:>3}  lr {:.3e}  train loss {:.4} acc {:.2}%  test loss {} acc {}  ({:.1} s)",
            record.epoch,
            record.lr,
            record.train_loss,
            100.0 * record.train_acc,
            record.test_loss.map_or("-".into(), |v| format!("{v:.4}")),
            record
                .test_acc
                .map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)),
            record.train_seconds
        );
        self.header.epoch = record.epoch;
        self.header.history.push(record.clone());
        let dir = self.checkpoint_dir();
        checkpoint::save(&dir, &self.header, net, Some(optim))?;
        checkpoint::export_safetensors(&self.run.path().join("model.safetensors"), net, &self.header.net)?;
        if let Err(e) = self.run.log_metric(record) {
            self.write_error = Some(e);
        }
        if self.entangle_every > 0 && record.epoch.is_multiple_of(self.entangle_every) {
            if let Err(e) = record_entanglement(self.run, net, record.epoch) {
                self.write_error = Some(e);
            }
        }
        Ok(())
    }
}

/// Appends the entanglement of every MPO layer of `net` to `entanglement.jsonl`; returns the records.
fn record_entanglement(run: &RunDir, net: &Net, epoch: usize) -> Result<Vec<tnml_nn::entangle::BondRecord>> {
    let recs = tnml_nn::entangle::net_records(net, epoch)?;
    if !recs.is_empty() {
        let lines = recs
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        run.append_lines("entanglement.jsonl", &lines)?;
    }
    Ok(recs)
}

/// Entropy per bond of each layer, as a markdown table (last recorded epoch vs baseline).
fn entanglement_table(
    recs: &[tnml_nn::entangle::BondRecord],
    baselines: &[tnml_nn::entangle::Baseline],
) -> String {
    let mut s = String::from(
        "| layer | bond | D | S | bound | S/bound | random init S |\n|---|---|---|---|---|---|---|\n",
    );
    for r in recs {
        let base = baselines
            .iter()
            .find(|b| b.layer == r.layer)
            .and_then(|b| {
                b.mean
                    .get(r.bond - 1)
                    .map(|m| format!("{m:.4} +- {:.4}", b.std[r.bond - 1]))
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} | {:.4} | {:.3} | {base} |",
            r.layer, r.bond, r.bond_dim, r.entropy, r.bound, r.ratio
        );
    }
    s
}

fn summary_table(history: &[EpochRecord]) -> String {
    let mut s = String::from("| epoch | lr | train loss | train acc | test loss | test acc | seconds |\n|---|---|---|---|---|---|---|\n");
    for r in history {
        let _ = writeln!(
            s,
            "| {} | {:.3e} | {:.4} | {:.2}% | {} | {} | {:.1} |",
            r.epoch,
            r.lr,
            r.train_loss,
            100.0 * r.train_acc,
            r.test_loss.map_or("-".into(), |v| format!("{v:.4}")),
            r.test_acc.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)),
            r.train_seconds
        );
    }
    s
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global().ok();
    }
    Ok(())
}

impl NetTrainArgs {
    /// Checks the options that are parsed from text (norm, init, decay, MPO specs) without training.
    pub fn check(&self) -> Result<()> {
        NormKind::parse(&self.norm)
            .with_context(|| format!("--norm {:?}: use none, layer or batch", self.norm))?;
        WeightInit::parse(&self.init).with_context(|| {
            format!(
                "--init {:?}: use he, glorot, lecun or a positive standard deviation",
                self.init
            )
        })?;
        parse_schedule(&self.lr_decay)?;
        if let Some(text) = &self.mpo {
            parse_specs(text, Arch::from(self.model), self.bond)?;
        }
        Ok(())
    }
}

pub fn train(args: &NetTrainArgs) -> Result<()> {
    set_threads(args.threads)?;
    let dev = device();
    let (net_cfg, train_cfg, mut run, first_epoch, header, net, optim) = if let Some(dir) = &args.resume {
        let ck = dir.join("checkpoint");
        let (mut header, net) =
            checkpoint::load(&ck, &dev).with_context(|| format!("resuming from {}", ck.display()))?;
        let mut tc = header
            .train
            .clone()
            .context("checkpoint has no training configuration")?;
        tc.epochs = tc.epochs.max(args.epochs);
        header.train = Some(tc.clone());
        let optim = checkpoint::load_optimizer(&ck, tc.build_optimizer())?;
        let run = RunDir::open_existing(dir)?;
        eprintln!(
            "resuming {} after epoch {} of {}",
            dir.display(),
            header.epoch,
            tc.epochs
        );
        (header.net.clone(), tc, run, header.epoch + 1, header, net, optim)
    } else {
        let arch = Arch::from(args.model);
        let norm = NormKind::parse(&args.norm)
            .with_context(|| format!("--norm {:?}: use none, layer or batch", args.norm))?;
        let init = WeightInit::parse(&args.init).with_context(|| {
            format!(
                "--init {:?}: use he, glorot, lecun or a positive standard deviation",
                args.init
            )
        })?;
        let mpo = match &args.mpo {
            Some(text) => Some(parse_specs(text, arch, args.bond)?),
            None if args.bond.is_some() => bail!("--bond needs --mpo gao"),
            None => None,
        };
        let net_cfg = NetConfig {
            arch,
            mpo,
            norm,
            init,
            seed: args.seed,
            pairing: (!args.pairing.is_empty()).then(|| args.pairing.clone()),
        };
        let cifar = arch.input_shape()[0] == 3;
        let train_cfg = TrainConfig {
            epochs: args.epochs,
            batch_size: args.batch_size,
            optimizer: match args.optimizer {
                OptimArg::Sgd => OptimizerKind::Sgd {
                    momentum: args.momentum,
                    nesterov: args.nesterov,
                },
                OptimArg::Adam => OptimizerKind::Adam,
            },
            lr: args.lr,
            schedule: parse_schedule(&args.lr_decay)?,
            weight_decay: args.weight_decay,
            seed: args.seed,
            augment: args.augment.unwrap_or(cifar),
        };
        train_cfg.validate()?;
        let net = net_cfg.init(&dev)?;
        for s in net_cfg.mpo.iter().flatten() {
            for c in &s.clamps {
                eprintln!(
                    "note: {s}: bond {} asked for {}, clamped to its rank cap {} (more adds parameters, not expressiveness)",
                    c.bond, c.requested, c.cap
                );
            }
        }
        let run = RunDir::create(args.out.as_deref(), "net-train")?;
        if args.entangle_every > 0 && !net.mpo_layers().is_empty() {
            let baselines = net
                .mpo_layers()
                .iter()
                .map(|(name, l)| tnml_nn::entangle::random_baseline(name, &l.spec(), net_cfg.init, 5))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            run.write_json("entanglement-baseline.json", &baselines)?;
            record_entanglement(&run, &net, 0)?;
        }
        let header = CheckpointHeader::new(net_cfg.clone(), Some(train_cfg.clone()));
        let optim = train_cfg.build_optimizer();
        (net_cfg, train_cfg, run, 1, header, net, optim)
    };
    let (train_set, test_set) = load_data(&args.data, net_cfg.arch, train_cfg.seed)?;
    let (description, report) = describe(&net, &net_cfg);
    eprint!("{description}");
    if first_epoch == 1 {
        run.write_config(&serde_json::json!({
            "command": "net train",
            "tnml_version": env!("CARGO_PKG_VERSION"),
            "dataset": args.data.location.resolve().0.cli_name(),
            "train_samples": train_set.len(),
            "test_samples": test_set.len(),
            "threads": rayon::current_num_threads(),
            "net": net_cfg,
            "train": train_cfg,
            "args": args,
        }))?;
        if let Some(r) = &report {
            run.write_json("compression.json", r)?;
        }
    }
    eprintln!(
        "training on {} images, testing on {}; run directory {}",
        train_set.len(),
        test_set.len(),
        run.path().display()
    );
    let mut printer = EpochPrinter {
        run: &mut run,
        header,
        entangle_every: args.entangle_every,
        bar: None,
        write_error: None,
    };
    let result = tnml_nn::train::train(
        net,
        optim,
        &train_cfg,
        &train_set,
        Some(&test_set),
        first_epoch,
        &dev,
        &mut printer,
    );
    if let Some(b) = printer.bar.take() {
        b.finish_and_clear();
    }
    let history = printer.header.history.clone();
    let ck = printer.checkpoint_dir();
    let write_error = printer.write_error.take();
    if let Err(e) = result {
        let kept = if history.is_empty() {
            "no epoch finished, nothing was saved".to_string()
        } else {
            format!(
                "the last good checkpoint (epoch {}) is in {}",
                history.len(),
                ck.display()
            )
        };
        return Err(anyhow::Error::from(e).context(format!("training stopped; {kept}")));
    }
    let mut summary = format!("# net train: {:?}\n\n```\n{description}```\n\n", net_cfg.arch);
    summary.push_str(&summary_table(&history));
    if let Ok(text) = std::fs::read_to_string(run.path().join("entanglement.jsonl")) {
        let recs: Vec<tnml_nn::entangle::BondRecord> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let last = recs.iter().map(|r| r.epoch).max().unwrap_or(0);
        let last_recs: Vec<_> = recs.into_iter().filter(|r| r.epoch == last).collect();
        let baselines: Vec<tnml_nn::entangle::Baseline> =
            std::fs::read(run.path().join("entanglement-baseline.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
        let _ = write!(
            summary,
            "\n## Entanglement after epoch {last}\n\n{}",
            entanglement_table(&last_recs, &baselines)
        );
    }
    match crate::cmd_plot::plot_run(run.path(), &["png", "svg"]) {
        Ok(files) => {
            let _ = write!(summary, "\nPlots: {} files in plots/.\n", files.len());
        }
        Err(e) => eprintln!("warning: plotting failed: {e:#}"),
    }
    run.write_summary(&summary)?;
    if let Some(e) = write_error {
        return Err(e.context("writing metrics.jsonl"));
    }
    if let Some(last) = history.last() {
        eprintln!(
            "done: test accuracy {} after {} epochs; {}",
            last.test_acc.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)),
            last.epoch,
            run.path().display()
        );
    }
    Ok(())
}

pub fn checkpoint_dir(path: &Path) -> PathBuf {
    if path.join("checkpoint").join("checkpoint.json").exists() {
        path.join("checkpoint")
    } else {
        path.to_path_buf()
    }
}

fn eval(args: &NetEvalArgs) -> Result<()> {
    let dev = device();
    let ck = checkpoint_dir(&args.checkpoint);
    let (header, net) = checkpoint::load(&ck, &dev)?;
    let (_, test) = load_data(&args.data, header.net.arch, 0)?;
    let (loss, acc) = evaluate(&net, &test, 1000, &dev);
    let (description, _) = describe(&net, &header.net);
    eprint!("{description}");
    println!(
        "test accuracy {:.2}% ({} images), loss {:.4}",
        100.0 * acc,
        test.len(),
        loss
    );
    Ok(())
}

fn compress(args: &NetCompressArgs) -> Result<()> {
    let dev = device();
    let ck = checkpoint_dir(&args.checkpoint);
    let (header, dense) = checkpoint::load(&ck, &dev)?;
    let arch = header.net.arch;
    if header.net.mpo.is_some() {
        bail!(
            "{} is already an MPO model; compress takes a dense checkpoint",
            ck.display()
        );
    }
    if matches!(arch, Arch::Vgg16 | Arch::Vgg19) {
        bail!(
            "compress handles FC2 and LeNet-5 (VGG's replaced conv5 layers are convolutions, not matrices)"
        );
    }
    let params = TruncParams {
        max_bond: args.bond.unwrap_or(usize::MAX),
        cutoff: args.cutoff,
        ..TruncParams::exact()
    };
    params.validate()?;
    let modes = match &args.mpo {
        Some(t) => parse_specs(t, arch, None)?,
        None => arch.gao_preset(None)?,
    };
    let (_, test) = load_data(&args.data, arch, args.seed)?;
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
        let tc = TrainConfig::adam(args.finetune_epochs, 100, args.lr, args.seed);
        let (train_set, _) = load_data(&args.data, arch, args.seed)?;
        let header = CheckpointHeader::new(cfg.clone(), Some(tc.clone()));
        let mut printer = EpochPrinter {
            run: &mut run,
            header,
            entangle_every: 1,
            bar: None,
            write_error: None,
        };
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
        checkpoint::export_safetensors(&run.path().join("model.safetensors"), &final_net, &cfg)?;
    }
    run.write_summary(&summary)?;
    eprintln!("run directory {}", run.path().display());
    Ok(())
}
