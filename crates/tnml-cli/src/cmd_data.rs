//! `tnml data fetch | info | show`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tnml_data::checksum::sha256_hex;
use tnml_data::dataset::locate;
use tnml_data::download::fetch;
use tnml_data::idx::read_maybe_gz;
use tnml_data::{load, Split};
use tnml_plot::{image_grid, GridImage};

pub use crate::args::{DataLocation, SplitArg};
use crate::progress::DownloadBar;

/// `tnml data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a dataset (verified against its published checksums, resumable).
    Fetch(DataLocation),
    /// Counts, shapes, label histograms and checksums of a dataset on disk.
    Info(DataLocation),
    /// Write a PNG grid of images with their labels.
    Show(ShowArgs),
}

/// Arguments of `tnml data show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    location: DataLocation,
    /// Which split.
    #[arg(long, value_enum, default_value = "train")]
    split: SplitArg,
    /// Index of the first image.
    #[arg(long, default_value_t = 0)]
    start: usize,
    /// Number of images.
    #[arg(long, default_value_t = 64)]
    count: usize,
    /// Images per row.
    #[arg(long, default_value_t = 8)]
    cols: usize,
    /// Magnification of each pixel.
    #[arg(long, default_value_t = 3)]
    scale: usize,
    /// Output PNG (default: <dataset>-<split>.png).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs a `tnml data` subcommand.
pub fn run(cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Fetch(loc) => fetch_cmd(loc),
        DataCommand::Info(loc) => info(loc),
        DataCommand::Show(args) => show(args),
    }
}

fn fetch_cmd(loc: &DataLocation) -> Result<()> {
    let (dataset, dir, _) = loc.resolve();
    let report = fetch(dataset, &dir, dataset.mirrors(), &mut DownloadBar::default()).with_context(|| {
        let names: Vec<&str> = dataset.remote_files().iter().map(|f| f.name).collect();
        format!(
            "fetching {} into {} (without network, copy {} there by hand)",
            dataset.display_name(),
            dir.join(dataset.subdir()).display(),
            names.join(", ")
        )
    })?;
    for f in &report.present {
        println!("{f}: present, checksum verified");
    }
    for f in &report.downloaded {
        println!("{f}: downloaded, checksum verified");
    }
    println!("{} is in {}", dataset.display_name(), report.dir.display());
    Ok(())
}

fn info(loc: &DataLocation) -> Result<()> {
    let (dataset, dir, source) = loc.resolve();
    let mut out = String::new();
    let _ = writeln!(out, "{} in {} ({source})", dataset.display_name(), dir.display());
    for split in [Split::Train, Split::Test] {
        let t0 = Instant::now();
        let set = load(dataset, &dir, split)?;
        let secs = t0.elapsed().as_secs_f64();
        let _ = writeln!(
            out,
            "\n{}: {} images of {}x{}x{} (loaded in {secs:.2} s)",
            split.name(),
            set.len(),
            set.channels,
            set.height,
            set.width
        );
        let hist = set.label_histogram();
        for (c, (name, n)) in dataset.classes().iter().zip(&hist).enumerate() {
            let _ = writeln!(out, "  {c} {name:<12} {n:>6}");
        }
        for file in locate(dataset, &dir, split)? {
            let digest = sha256_hex(&read_maybe_gz(&file)?);
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let known = dataset.published_sha256(&name).map(|h| h == digest);
            let verdict = match known {
                Some(true) => "matches the recorded SHA-256",
                Some(false) => "DIFFERS from the recorded SHA-256",
                None => "no recorded SHA-256 to compare",
            };
            let what = if file.extension().is_some_and(|e| e == "gz") {
                "SHA-256 of the decompressed data (sha256sum of the .gz file differs)"
            } else {
                "SHA-256"
            };
            let _ = writeln!(out, "  {} {what}: {digest} ({verdict})", file.display());
        }
    }
    print!("{out}");
    Ok(())
}

fn show(args: &ShowArgs) -> Result<()> {
    // bounded before anything is loaded or allocated: the grid is cols * width * scale pixels wide
    for (flag, value, max) in [
        ("--cols", args.cols, 256),
        ("--scale", args.scale, 32),
        ("--count", args.count, 10_000),
    ] {
        if value == 0 || value > max {
            bail!("{flag} {value}: use 1 to {max}");
        }
    }
    let (dataset, dir, _) = args.location.resolve();
    let split = Split::from(args.split);
    let set = load(dataset, &dir, split)?;
    if args.start >= set.len() {
        bail!(
            "--start {} is past the end: the {} split has {} images",
            args.start,
            split.name(),
            set.len()
        );
    }
    let end = args.start.saturating_add(args.count).min(set.len());
    let labels: Vec<String> = (args.start..end).map(|i| set.labels[i].to_string()).collect();
    let images: Vec<GridImage> = (args.start..end)
        .zip(&labels)
        .map(|(i, label)| GridImage {
            pixels: set.image(i),
            channels: set.channels,
            height: set.height,
            width: set.width,
            label,
        })
        .collect();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.png", dataset.cli_name(), split.name())));
    let (w, h) = image_grid(&images, args.cols, args.scale, &out)
        .with_context(|| format!("drawing {}", out.display()))?;
    println!(
        "wrote {} ({w}x{h} px): {} images {}..{} of {} {}",
        out.display(),
        images.len(),
        args.start,
        end,
        dataset.display_name(),
        split.name()
    );
    let names: Vec<String> = dataset
        .classes()
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}={n}"))
        .collect();
    println!("labels: {}", names.join(" "));
    Ok(())
}
