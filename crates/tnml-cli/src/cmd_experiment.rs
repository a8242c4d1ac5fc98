//! `tnml experiment <config.toml>`: the seed talk's experiments as ready-made configs. A config
//! names a base set of `tnml net train` options and a list of variants that override some of
//! them; every variant is trained into its own run directory (metrics, entanglement, plots), and
//! the experiment directory gets a comparison table (test accuracy, entanglement per bond against
//! the random-initialization baseline) and comparison plots.
//!
//! ```toml
//! name = "initial-variance"
//! description = "..."
//! [base]                     # any `tnml net train` option (`_` for `-`), read as
//!                            # `NetTrainArgs` through the command line's own parsers
//! model = "talk"
//! mpo = "gao"
//! epochs = 5
//! [[variant]]
//! name = "std 0.01"
//! init = "0.01"
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use tnml_nn::entangle::{Baseline, BondRecord};
use tnml_nn::train::EpochRecord;
use tnml_plot::{draw_lines, LineChart, Series};

use crate::net::NetTrainArgs;
use crate::run_dir::RunDir;
use crate::run_files;

/// Arguments of `tnml experiment`.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// The experiment config (TOML), e.g. experiments/tensorization.toml.
    pub config: PathBuf,
    /// Extra options applied to every variant, e.g. `--set epochs=1 --set train_limit=2000`;
    /// an empty value (`--set data_dir=`) removes the option.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Experiment directory (default runs/experiment-<name>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    base: toml::Table,
    #[serde(rename = "variant")]
    variants: Vec<Variant>,
}

#[derive(Debug, Deserialize)]
struct Variant {
    name: String,
    #[serde(flatten)]
    options: toml::Table,
}

/// An override's value as TOML (`epochs=1` is a number, `lr_decay=exp:0.9` text).
fn override_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The most variants one experiment file may hold.
const MAX_VARIANTS: usize = 1000;

/// Runs `tnml experiment`.
pub fn run(args: &ExperimentArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let cfg: Config = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid experiment", args.config.display()))?;
    if cfg.variants.is_empty() {
        bail!("{}: no [[variant]]", args.config.display());
    }
    // each variant is a whole training run: thousands are not an experiment anyone waits for
    if cfg.variants.len() > MAX_VARIANTS {
        bail!(
            "{}: {} variants, at most {MAX_VARIANTS} (each trains a network; split the experiment)",
            args.config.display(),
            cfg.variants.len()
        );
    }
    let mut overrides = toml::Table::new();
    for kv in &args.overrides {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        let value = if v.trim().is_empty() {
            toml::Value::String(String::new())
        } else {
            override_value(v.trim())
        };
        overrides.insert(k.trim().to_string(), value);
    }
    // Check every variant's options before training anything.
    let mut plans: Vec<(String, NetTrainArgs)> = Vec::new();
    let mut dirs: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for v in &cfg.variants {
        let mut t = cfg.base.clone();
        t.extend(v.options.clone());
        for (k, val) in &overrides {
            if val.as_str() == Some("") {
                t.remove(k);
            } else {
                t.insert(k.clone(), val.clone());
            }
        }
        let variant = || format!("variant {:?}", v.name);
        let args = NetTrainArgs::from_table(t).with_context(variant)?;
        args.net_config().with_context(variant)?;
        args.train_config().with_context(variant)?;
        if let Some(other) = dirs.insert(slug(&v.name), v.name.clone()) {
            bail!(
                "variants {other:?} and {:?} would share the run directory {:?}: rename one",
                v.name,
                slug(&v.name)
            );
        }
        plans.push((v.name.clone(), args));
    }
    let run = RunDir::create(args.out.as_deref(), &format!("experiment-{}", slug(&cfg.name)))?;
    run.write_file("experiment.toml", text.as_bytes())?;
    eprintln!(
        "experiment {}: {} variants -> {}",
        cfg.name,
        plans.len(),
        run.path().display()
    );
    let mut rows = Vec::new();
    for (name, mut a) in plans {
        let dir = run.path().join(slug(&name));
        a.out = Some(dir.clone());
        eprintln!("\n== variant {name}");
        crate::net::train(&a).with_context(|| format!("variant {name}"))?;
        rows.push((name, dir));
    }
    summarize(&run, &cfg.name, &cfg.description, &rows)
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn summarize(run: &RunDir, name: &str, description: &str, rows: &[(String, PathBuf)]) -> Result<()> {
    let mut md = format!("# experiment: {name}\n\n{description}\n\n");
    md.push_str("| variant | test acc | train acc | layer | S per bond (last epoch) | random init S per bond | S/bound |\n|---|---|---|---|---|---|---|\n");
    let mut final_ee = Vec::new();
    let mut mid_ee = Vec::new();
    let mut csv = String::from(
        "variant,test_acc,train_acc,layer,bond,bond_dim,entropy,bound,baseline_mean,baseline_std\n",
    );
    for (i, (variant, dir)) in rows.iter().enumerate() {
        let metrics: Vec<EpochRecord> = read_lines(&dir.join(run_files::METRICS));
        let ee: Vec<BondRecord> = read_lines(&dir.join(run_files::ENTANGLEMENT));
        let base: Vec<Baseline> = std::fs::read(dir.join(run_files::ENTANGLEMENT_BASELINE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let last = metrics.last();
        let test = last
            .and_then(|r| r.test_acc)
            .map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
        let train = last.map_or("-".into(), |r| format!("{:.2}%", 100.0 * r.train_acc));
        let last_epoch = ee.iter().map(|r| r.epoch).max().unwrap_or(0);
        let mut layers: Vec<String> = Vec::new();
        for r in &ee {
            if !layers.contains(&r.layer) {
                layers.push(r.layer.clone());
            }
        }
        if layers.is_empty() {
            let _ = writeln!(md, "| {variant} | {test} | {train} | (dense) | - | - | - |");
        }
        for layer in &layers {
            let at: Vec<&BondRecord> = ee
                .iter()
                .filter(|r| &r.layer == layer && r.epoch == last_epoch)
                .collect();
            let b = base.iter().find(|b| &b.layer == layer);
            let fmt = |v: Vec<f64>| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                md,
                "| {variant} | {test} | {train} | {layer} | {} | {} | {} |",
                fmt(at.iter().map(|r| r.entropy).collect()),
                b.map_or("-".into(), |b| fmt(b.mean.clone())),
                fmt(at.iter().map(|r| r.ratio).collect()),
            );
            for r in &at {
                let (m, s) = b.map_or((f64::NAN, f64::NAN), |b| (b.mean[r.bond - 1], b.std[r.bond - 1]));
                let _ = writeln!(
                    csv,
                    "{variant},{},{},{layer},{},{},{:.6},{:.6},{m:.6},{s:.6}",
                    last.and_then(|r| r.test_acc).unwrap_or(f64::NAN),
                    last.map_or(f64::NAN, |r| r.train_acc),
                    r.bond,
                    r.bond_dim,
                    r.entropy,
                    r.bound
                );
            }
            if layer == &layers[0] {
                final_ee.push(Series {
                    name: variant.clone(),
                    points: at.iter().map(|r| (r.bond as f64, r.ratio)).collect(),
                    dashed: false,
                    color: i,
                });
                let nb = at.len();
                let mid = nb.div_ceil(2).max(1);
                mid_ee.push(Series {
                    name: format!("{variant} (bond {mid})"),
                    points: ee
                        .iter()
                        .filter(|r| &r.layer == layer && r.bond == mid)
                        .map(|r| (r.epoch as f64, r.entropy))
                        .collect(),
                    dashed: false,
                    color: i,
                });
                if let Some(b) = b {
                    mid_ee.push(Series {
                        name: String::new(),
                        points: vec![
                            (0.0, b.mean[mid - 1]),
                            (last_epoch.max(1) as f64, b.mean[mid - 1]),
                        ],
                        dashed: true,
                        color: i,
                    });
                }
            }
        }
    }
    run.write_file("comparison.csv", csv.as_bytes())?;
    let plots = run.path().join("plots");
    std::fs::create_dir_all(&plots)?;
    for ext in ["png", "svg"] {
        if final_ee.iter().any(|s| !s.points.is_empty()) {
            draw_lines(
                &LineChart {
                    title: format!("{name}: S / bound per bond after training"),
                    x_label: "bond".into(),
                    y_label: "S / ln(min cut)".into(),
                    series: final_ee.clone(),
                    log_y: false,
                },
                &plots.join(format!("entropy-by-bond.{ext}")),
            )?;
            draw_lines(
                &LineChart {
                    title: format!("{name}: middle-bond entropy over training (dashed: random init)"),
                    x_label: "epoch".into(),
                    y_label: "S (nats)".into(),
                    series: mid_ee.clone(),
                    log_y: false,
                },
                &plots.join(format!("entropy-vs-epoch.{ext}")),
            )?;
        }
    }
    md.push_str("\nPer-variant run directories hold metrics, entanglement.jsonl and plots; comparison.csv has every number above.\n");
    run.write_summary(&md)?;
    print!("{md}");
    Ok(())
}
