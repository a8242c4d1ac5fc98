//! `tnml net train | eval | predict | export | compress`: MPO-Nets (Gao et al. 2020) and their dense baselines.
//! Training itself lives in [`crate::net`] (shared with `tnml experiment`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use tnml_data::Split;
use tnml_nn::checkpoint;
use tnml_nn::train::{evaluate, logits};

use crate::confusion::{report, run_dir_of, Confusion};

use crate::net::report::describe;
use crate::net::{NetData, NetTrainArgs};
use crate::runtime::device;

mod compress;
mod export;
mod predict;

pub use compress::NetCompressArgs;
pub use export::NetExportArgs;
pub use predict::NetPredictArgs;

/// `tnml net` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Train FC2, LeNet-5, VGG, ResNet or DenseNet, dense or with MPO layers; checkpoints every epoch.
    Train(NetTrainArgs),
    /// Test accuracy, loss and confusion matrix of a checkpoint.
    Eval(NetEvalArgs),
    /// Per image: label, predicted label, logits and softmax probabilities (CSV or safetensors).
    Predict(NetPredictArgs),
    /// The weights as a PyTorch state_dict (safetensors) that loads into the equivalent nn.Sequential.
    Export(NetExportArgs),
    /// Compress a trained dense model's fully connected layers into MPOs by TT-SVD, report the
    /// accuracy before and after, optionally fine-tune.
    Compress(NetCompressArgs),
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

/// Runs a `tnml net` subcommand.
pub fn run(cmd: &NetCommand) -> Result<()> {
    match cmd {
        NetCommand::Train(a) => crate::net::train(a),
        NetCommand::Eval(a) => eval(a),
        NetCommand::Predict(a) => predict::predict(a),
        NetCommand::Export(a) => export::export(a),
        NetCommand::Compress(a) => compress::compress(a),
    }
}

pub(crate) fn eval(args: &NetEvalArgs) -> Result<()> {
    let dev = device();
    let ck = checkpoint::resolve_dir(&args.checkpoint);
    let (header, net) = checkpoint::load(&ck, &dev)?;
    let test = args.data.load(Split::Test, header.net.arch, 0)?;
    let (loss, acc) = evaluate(&net, &test, 1000, &dev);
    let (description, _) = describe(&net, &header.net);
    eprint!("{description}");
    println!(
        "test accuracy {:.2}% ({} images), loss {:.4}",
        100.0 * acc,
        test.len(),
        loss
    );
    let predicted = predict::argmax_rows(&logits(&net, &test, 1000, &dev));
    let labels: Vec<usize> = test.labels.iter().map(|&l| l as usize).collect();
    let confusion = Confusion::new(10, &labels, &predicted, Split::Test.name(), &ck)?;
    report(&confusion, &run_dir_of(&ck))
}
