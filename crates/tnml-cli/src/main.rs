//! `tnml`: the command-line front end. Every subcommand is a thin layer over the library crates.

mod args;
mod cluster;
mod cmd_data;
mod cmd_entangle;
mod cmd_experiment;
mod cmd_mpo;
mod cmd_mps;
mod cmd_net;
mod cmd_plot;
mod confusion;
mod figures;
mod flags;
mod net;
mod predictions;
mod progress;
mod run_dir;
mod run_files;
mod runtime;

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Tensor-network machine learning: MPO layers, entanglement analysis, MPS classifiers.
#[derive(Debug, Parser)]
#[command(
    name = "tnml",
    version,
    about = "Tensor-network machine learning: MPO layers, entanglement analysis, MPS classifiers",
    long_about = "Tensor-network machine learning: MPO layers, entanglement analysis, MPS classifiers.\n\n\
        Every command that produces results writes a run directory (config.json, metrics.jsonl, \
        model files as safetensors, CSV tables, summary.md), by default under runs/.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Matrix product operators (tensor-train matrices).
    #[command(subcommand)]
    Mpo(MpoCommand),
    /// The MPS classifier of Stoudenmire & Schwab (2016): train by sweeps, evaluate, project.
    #[command(subcommand)]
    Mps(cmd_mps::MpsCommand),
    /// MPO-Nets (Gao et al. 2020): FC2, LeNet-5, VGG-16/19, ResNet-20/56, DenseNet-40, dense or
    /// with MPO layers; train, evaluate, predict, export to PyTorch, compress a dense model by TT-SVD.
    #[command(subcommand)]
    Net(cmd_net::NetCommand),
    /// Entanglement per bond of a model's MPO layers or of every weight of a state_dict (safetensors), with
    /// bound, spectrum, truncation error and compression vs bond dimension, and accuracy after
    /// truncation (with and without retraining) for tnml models.
    Entangle(cmd_entangle::EntangleArgs),
    /// Run one of the seed talk's experiments (a TOML config in experiments/): several trainings,
    /// one comparison table and plots.
    Experiment(cmd_experiment::ExperimentArgs),
    /// Redraw the figures of a run directory (accuracy, loss, entanglement per bond with bound
    /// and random baseline, spectra, truncation error) from its recorded files; PNG and SVG.
    Plot(cmd_plot::PlotArgs),
    /// Datasets: fetch (checked download), info (counts, histograms, checksums), show (PNG grid).
    #[command(subcommand)]
    Data(cmd_data::DataCommand),
}

#[derive(Debug, Subcommand)]
enum MpoCommand {
    /// Compress a dense matrix into an MPO by TT-SVD; report truncation, compression ratio and
    /// the entanglement entropy of every bond; write a run directory.
    Compress(cmd_mpo::CompressArgs),
}

impl Command {
    /// The command's name, as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::Mpo(_) => "mpo",
            Command::Mps(_) => "mps",
            Command::Net(_) => "net",
            Command::Entangle(_) => "entangle",
            Command::Experiment(_) => "experiment",
            Command::Plot(_) => "plot",
            Command::Data(_) => "data",
        }
    }
}

/// The ids of the options given on the command line (not defaulted) of the innermost
/// subcommand (`tnml mps train ...` -> those of `train`).
fn explicit_ids(matches: &ArgMatches) -> Vec<String> {
    let mut m = matches;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

fn main() -> ExitCode {
    let matches = Cli::command().try_get_matches().unwrap_or_else(|e| {
        // `--bond` was once an alias of `--max-bond`; it now means only the MPO layers' bond
        // dimension of `net train`: say where the cap went instead of a bare "unexpected argument"
        let bond = e.kind() == clap::error::ErrorKind::UnknownArgument
            && e.get(clap::error::ContextKind::InvalidArg)
                .is_some_and(|v| v.to_string().starts_with("--bond"));
        if bond {
            eprintln!(
                "error: --bond is the bond dimension of the MPO layers `net train --mpo gao` builds; \
                 a cap on bond dimensions is --max-bond (mps train, mpo compress, net compress), \
                 a bond position of `mps project` is --at-bond"
            );
            std::process::exit(2);
        }
        e.exit()
    });
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match &mut cli.command {
        Command::Net(cmd_net::NetCommand::Train(args)) => args.explicit = explicit_ids(&matches),
        Command::Mps(cmd_mps::MpsCommand::Train(args)) => args.explicit = explicit_ids(&matches),
        Command::Entangle(args) => args.explicit = explicit_ids(&matches),
        _ => {}
    }
    let cluster = match cluster::Cluster::start() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cli.command {
        Command::Mps(cmd) => cmd_mps::run(cmd, &cluster),
        other => cluster.require_single(other.name()).and_then(|()| match other {
            Command::Mpo(MpoCommand::Compress(args)) => cmd_mpo::compress(args),
            Command::Data(cmd) => cmd_data::run(cmd),
            Command::Mps(_) => unreachable!("handled above"),
            Command::Net(cmd) => cmd_net::run(cmd),
            Command::Plot(args) => cmd_plot::run(args),
            Command::Entangle(args) => cmd_entangle::run(args),
            Command::Experiment(args) => cmd_experiment::run(args),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cluster.fail(&err),
    }
}
