//! `tnml net train | eval | compress`: MPO-Nets (Gao et al. 2020) and their dense baselines.
//! Training itself lives in [`crate::net`] (shared with `tnml experiment`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use tnml_data::Split;
use tnml_nn::checkpoint;
use tnml_nn::train::evaluate;

use crate::net::report::describe;
use crate::net::{NetData, NetTrainArgs};
use crate::runtime::device;

mod auto;
mod compress;

pub use compress::NetCompressArgs;

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
    Ok(())
}
