//! [`NetTrainArgs`]: the one configuration of a network training run. The same struct is the
//! `tnml net train` command line (clap) and an experiment variant (serde, from TOML); it is
//! validated once, into the library's [`NetConfig`] and [`TrainConfig`], before any work starts.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, ValueEnum};
use serde::{Deserialize, Deserializer, Serialize};
use tnml_data::Split;
use tnml_nn::data::{load_split, Subset};
use tnml_nn::train::{LabeledImages, LrSchedule, OptimizerKind, TrainConfig};
use tnml_nn::{Arch, MpoLayers, NetConfig, NormKind, WeightInit};

use crate::args::{DataLocation, Limits, Seed, Threads};

/// Architectures on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
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
    /// Wide ResNet-20 (k = 4: 64/128/256 channels, 3 basic blocks per stage; CIFAR-10, or
    /// MNIST padded to 32x32 as 3 channels); Gao's MPO replaces the classifier 256 -> 10.
    Resnet,
    /// Wide ResNet-56 (k = 4, 9 blocks per stage); Gao's MPOs also replace the last unit's two
    /// convolutions (whole 256x8x8 maps).
    Resnet56,
    /// DenseNet-40 (growth 12, 3 blocks of 12 layers); Gao's MPO replaces the classifier 448 -> 10.
    Densenet40,
}

impl From<ModelArg> for Arch {
    fn from(m: ModelArg) -> Self {
        match m {
            ModelArg::Fc2 => Arch::Fc2,
            ModelArg::Lenet5 => Arch::Lenet5,
            ModelArg::Vgg16 => Arch::Vgg16,
            ModelArg::Vgg19 => Arch::Vgg19,
            ModelArg::Talk => Arch::Talk,
            ModelArg::Resnet => Arch::Resnet20,
            ModelArg::Resnet56 => Arch::Resnet56,
            ModelArg::Densenet40 => Arch::Densenet40,
        }
    }
}

/// Optimizer on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimArg {
    /// Stochastic gradient descent (with --momentum, --nesterov).
    Sgd,
    /// Adam.
    Adam,
}

/// Data options of the net commands.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct NetData {
    #[command(flatten)]
    #[serde(flatten)]
    pub location: DataLocation,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: Limits,
}

impl NetData {
    /// One split as `arch` wants it: the training split a seeded random subset of
    /// `--train-limit` images, the test split its first `--test-limit`. Reads that split's
    /// files only.
    ///
    /// # Errors
    /// Missing or corrupt files, a limit of 0, images that do not fit the architecture.
    pub fn load(&self, split: Split, arch: Arch, seed: u64) -> Result<LabeledImages> {
        let (dataset, dir, _) = self.location.resolve();
        let subset = match split {
            Split::Train => self
                .limits
                .train_limit
                .map_or(Subset::All, |limit| Subset::Random { limit, seed }),
            Split::Test => self.limits.test_limit.map_or(Subset::All, Subset::First),
        };
        Ok(load_split(dataset, &dir, split, subset, arch)?)
    }
}

/// Arguments of `tnml net train`, and the variants of `tnml experiment`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct NetTrainArgs {
    /// Architecture.
    #[arg(long, value_enum, default_value = "fc2")]
    pub model: ModelArg,
    /// MPO layers: `gao` (Gao et al.'s shapes), or one spec per replaceable layer separated by
    /// `;` (`M^{4,4,4,4}_{4,7,7,4}(16);4,4,4,4->1,1,10,1:4`). Omit for the dense model.
    #[arg(long)]
    #[serde(deserialize_with = "opt_from_text")]
    pub mpo: Option<MpoLayers>,
    /// Talk model: MPO site k takes input axis PAIRING[k] (a permutation, e.g. 4,3,2,1,0 pairs the
    /// least significant pixel digit with the most significant output digit).
    #[arg(long, value_delimiter = ',')]
    pub pairing: Vec<usize>,
    /// Bond dimension D of the MPO layers made by `--mpo gao`: FC2's first layer (Gao sweeps
    /// 2..22; default 16), every layer for LeNet-5 and VGG.
    #[arg(long)]
    pub bond: Option<usize>,
    /// Norm after hidden fully connected layers: none, layer, batch.
    #[arg(long, default_value = "none")]
    #[serde(deserialize_with = "from_text", serialize_with = "as_text")]
    pub norm: NormKind,
    /// Initial variance of the (reconstructed) weights: he, glorot, lecun, or a standard deviation.
    #[arg(long, default_value = "he")]
    #[serde(deserialize_with = "from_text", serialize_with = "as_text")]
    pub init: WeightInit,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: NetData,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Images per data-parallel shard of a batch (0, the default: the whole batch in one pass,
    /// burn's operations parallel inside). With N > 0 each shard's forward and backward pass
    /// runs whole on one core and the gradients are summed in shard order: the model depends on
    /// N (not on --threads), and a batch keeps up to batch / N cores busy. On 2 cores LeNet-5
    /// trains faster with 50 (README, Thread scaling); FC2 does not. Models with BatchNorm are
    /// not sharded.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub shard_rows: usize,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimArg,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// SGD momentum in [0, 1) (0 = plain SGD).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    pub nesterov: bool,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate decay: none, exp:GAMMA (per epoch), step:EVERY:GAMMA; GAMMA in (0, 1].
    #[arg(long, default_value = "none")]
    #[serde(deserialize_with = "from_text", serialize_with = "as_text")]
    pub lr_decay: LrSchedule,
    /// Augment each epoch: random crop (pad 4) + flip for CIFAR-10 (default on), shifts of up to 2
    /// pixels for digits (default off).
    #[arg(long)]
    pub augment: Option<bool>,
    #[command(flatten)]
    #[serde(flatten)]
    pub seed: Seed,
    /// Hold out this many training images (a seeded random choice, the same for every run with
    /// the same --seed) and report their accuracy every epoch, to choose options without looking
    /// at the test set; training uses the rest.
    #[arg(long)]
    pub validation: Option<usize>,
    /// Record the entanglement of every MPO layer every K epochs (0 = never) into
    /// entanglement.jsonl, with a random-initialization baseline; plots go to plots/.
    #[arg(long, default_value_t = 1)]
    pub entangle_every: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub threads: Threads,
    /// Run directory (default runs/net-train-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint (model, optimizer, epoch);
    /// --epochs may raise the total.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// The options given on the command line (clap ids), as opposed to defaults; filled in by
    /// `main` from the argument matches, used by `--resume`.
    #[arg(skip)]
    #[serde(skip)]
    pub explicit: Vec<String>,
}

#[derive(Parser)]
#[command(name = "tnml net train")]
struct TrainCli {
    #[command(flatten)]
    args: NetTrainArgs,
}

impl Default for NetTrainArgs {
    /// The command line's defaults: one source for both the flags and the experiment files.
    fn default() -> Self {
        TrainCli::try_parse_from(["tnml net train"])
            .expect("the defaults of net train parse")
            .args
    }
}

/// A value written as text, or as a number (`init = 0.01`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    S(String),
    F(f64),
    I(i64),
}

impl Text {
    fn parse<T: FromStr>(self) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self {
            Text::S(s) => s,
            Text::F(f) => f.to_string(),
            Text::I(i) => i.to_string(),
        }
        .parse()
        .map_err(|e: T::Err| e.to_string())
    }
}

/// Deserializes a value through `FromStr`, the parser the command line uses.
fn from_text<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<T, D::Error>
where
    T::Err: std::fmt::Display,
{
    Text::deserialize(d)?.parse().map_err(serde::de::Error::custom)
}

/// As [`from_text`] for an optional value (`null` or absent is `None`).
fn opt_from_text<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error>
where
    T::Err: std::fmt::Display,
{
    Option::<Text>::deserialize(d)?
        .map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// Writes a value in its textual form (`exp:0.9`, `he`, `layer`), the form it is read back from.
fn as_text<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl NetTrainArgs {
    /// Reads one experiment variant: `table` holds `net train` options by name (`_` for `-`).
    /// Unknown names, `out` and `resume` are refused; values go through the command line's parsers.
    ///
    /// # Errors
    /// An unknown option or a value that does not parse.
    pub fn from_table(table: toml::Table) -> Result<Self> {
        let known: BTreeSet<String> = TrainCli::command()
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| id != "out" && id != "resume")
            .collect();
        if let Some(k) = table.keys().find(|k| !known.contains(k.as_str())) {
            bail!(
                "unknown option {k:?} (known: {})",
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        match toml::Value::Table(table.clone()).try_into() {
            Ok(args) => Ok(args),
            Err(whole) => {
                // name the option: parse each one alone
                for (k, v) in &table {
                    let one = toml::Table::from_iter([(k.clone(), v.clone())]);
                    if let Err(e) = toml::Value::Table(one).try_into::<Self>() {
                        bail!("--{} {v}: {}", k.replace('_', "-"), e.to_string().trim());
                    }
                }
                Err(whole).context("the options do not parse together")
            }
        }
    }

    /// The model to build, checked (MPO specs against the architecture, `--bond`, `--pairing`).
    ///
    /// # Errors
    /// Specs that do not fit the architecture, `--bond` without `--mpo gao`, a pairing
    /// on a model without the talk layer.
    pub fn net_config(&self) -> Result<NetConfig> {
        let arch = Arch::from(self.model);
        let mpo = match &self.mpo {
            Some(m) => Some(m.resolve(arch, self.bond)?),
            None if self.bond.is_some() => bail!("--bond needs --mpo gao"),
            None => None,
        };
        let pairing_applies = arch == Arch::Talk && mpo.is_some();
        if !self.pairing.is_empty() && !pairing_applies {
            bail!("--pairing applies to the talk model with --mpo (its MPO layer's sites)");
        }
        let cfg = NetConfig {
            arch,
            mpo,
            norm: self.norm,
            init: self.init,
            seed: self.seed.seed,
            pairing: (!self.pairing.is_empty()).then(|| self.pairing.clone()),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The training settings, checked.
    ///
    /// # Errors
    /// 0 epochs, a bad learning rate, momentum or weight decay.
    pub fn train_config(&self) -> Result<TrainConfig> {
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("--momentum {}: use a value in [0, 1)", self.momentum);
        }
        if self.nesterov && (self.optimizer != OptimArg::Sgd || self.momentum == 0.0) {
            bail!("--nesterov needs --optimizer sgd with --momentum > 0");
        }
        let cifar = Arch::from(self.model).input_shape()[0] == 3;
        let cfg = TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer: match self.optimizer {
                OptimArg::Sgd => OptimizerKind::Sgd {
                    momentum: self.momentum,
                    nesterov: self.nesterov,
                },
                OptimArg::Adam => OptimizerKind::Adam,
            },
            lr: self.lr,
            schedule: self.lr_decay,
            weight_decay: self.weight_decay,
            seed: self.seed.seed,
            augment: self.augment.unwrap_or(cifar),
            shard_rows: self.shard_rows,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}
