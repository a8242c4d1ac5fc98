//! `tnml plot <run dir>`: redraws every figure of a run from its recorded files.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::figures::plot_run;

/// Arguments of `tnml plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The run directory.
    pub run: PathBuf,
    /// Image format: png, svg or both.
    #[arg(long, default_value = "both")]
    pub format: String,
}

/// Runs `tnml plot`.
pub fn run(args: &PlotArgs) -> Result<()> {
    let formats: Vec<&str> = match args.format.as_str() {
        "png" => vec!["png"],
        "svg" => vec!["svg"],
        "both" => vec!["png", "svg"],
        f => bail!("--format {f:?}: use png, svg or both"),
    };
    if !args.run.is_dir() {
        bail!("{} is not a run directory", args.run.display());
    }
    let files = plot_run(&args.run, &formats)?;
    if files.is_empty() {
        bail!(
            "{} has nothing to plot (no metrics.jsonl, entanglement.jsonl or truncation.csv)",
            args.run.display()
        );
    }
    for f in &files {
        println!("{}", f.display());
    }
    Ok(())
}
