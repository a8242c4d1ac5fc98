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
use std::path::{Path, PathBuf};

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

/// One variant's records, read back from its run directory (missing files read as empty).
struct VariantRecords {
    metrics: Vec<EpochRecord>,
    entanglement: Vec<BondRecord>,
    baselines: Vec<Baseline>,
}

impl VariantRecords {
    fn read(dir: &Path) -> Self {
        Self {
            metrics: read_lines(&dir.join(run_files::METRICS)),
            entanglement: read_lines(&dir.join(run_files::ENTANGLEMENT)),
            baselines: std::fs::read(dir.join(run_files::ENTANGLEMENT_BASELINE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        }
    }

    /// MPO layers in the order first recorded.
    fn layers(&self) -> Vec<&str> {
        let mut layers: Vec<&str> = Vec::new();
        for r in &self.entanglement {
            if !layers.contains(&r.layer.as_str()) {
                layers.push(&r.layer);
            }
        }
        layers
    }
}

/// The comparison's text outputs and the two figures' lines, filled variant by variant.
#[derive(Default)]
struct Comparison {
    md: String,
    csv: String,
    /// S / bound per bond after training, first MPO layer, one line per variant.
    final_ee: Vec<Series>,
    /// The middle bond's entropy over the epochs (dashed: its random-initialisation mean).
    mid_ee: Vec<Series>,
}

impl Comparison {
    /// Adds variant number `i`: a table row and CSV rows per layer, and the figures' lines of
    /// its first MPO layer.
    fn add(&mut self, i: usize, variant: &str, v: &VariantRecords) {
        let last = v.metrics.last();
        let test = last
            .and_then(|r| r.test_acc)
            .map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
        let train = last.map_or("-".into(), |r| format!("{:.2}%", 100.0 * r.train_acc));
        let last_epoch = v.entanglement.iter().map(|r| r.epoch).max().unwrap_or(0);
        let layers = v.layers();
        if layers.is_empty() {
            let _ = writeln!(self.md, "| {variant} | {test} | {train} | (dense) | - | - | - |");
        }
        let fmt = |v: Vec<f64>| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
        for (k, layer) in layers.iter().enumerate() {
            let at: Vec<&BondRecord> = v
                .entanglement
                .iter()
                .filter(|r| r.layer == *layer && r.epoch == last_epoch)
                .collect();
            let b = v.baselines.iter().find(|b| b.layer == *layer);
            let _ = writeln!(
                self.md,
                "| {variant} | {test} | {train} | {layer} | {} | {} | {} |",
                fmt(at.iter().map(|r| r.entropy).collect()),
                b.map_or("-".into(), |b| fmt(b.mean.clone())),
                fmt(at.iter().map(|r| r.ratio).collect()),
            );
            for r in &at {
                let (m, s) = b.map_or((f64::NAN, f64::NAN), |b| (b.mean[r.bond - 1], b.std[r.bond - 1]));
                let _ = writeln!(
                    self.csv,
                    "{variant},{},{},{layer},{},{},{:.6},{:.6},{m:.6},{s:.6}",
                    last.and_then(|r| r.test_acc).unwrap_or(f64::NAN),
                    last.map_or(f64::NAN, |r| r.train_acc),
                    r.bond,
                    r.bond_dim,
                    r.entropy,
                    r.bound
                );
            }
            if k == 0 {
                self.first_layer_lines(i, variant, v, layer, &at, last_epoch);
            }
        }
    }

    fn first_layer_lines(
        &mut self,
        i: usize,
        variant: &str,
        v: &VariantRecords,
        layer: &str,
        at: &[&BondRecord],
        last_epoch: usize,
    ) {
        let line = |name: String, points: Vec<(f64, f64)>, dashed: bool| Series {
            name,
            points,
            dashed,
            color: i,
        };
        self.final_ee.push(line(
            variant.to_string(),
            at.iter().map(|r| (r.bond as f64, r.ratio)).collect(),
            false,
        ));
        let mid = at.len().div_ceil(2).max(1);
        let over_epochs = v
            .entanglement
            .iter()
            .filter(|r| r.layer == layer && r.bond == mid)
            .map(|r| (r.epoch as f64, r.entropy))
            .collect();
        self.mid_ee
            .push(line(format!("{variant} (bond {mid})"), over_epochs, false));
        if let Some(b) = v.baselines.iter().find(|b| b.layer == layer) {
            let y = b.mean[mid - 1];
            self.mid_ee.push(line(
                String::new(),
                vec![(0.0, y), (last_epoch.max(1) as f64, y)],
                true,
            ));
        }
    }

    /// `plots/entropy-by-bond` and `plots/entropy-vs-epoch` (when any variant has MPO layers).
    fn draw(&self, run: &RunDir, name: &str) -> Result<()> {
        if !self.final_ee.iter().any(|s| !s.points.is_empty()) {
            return Ok(());
        }
        let plots = run.path().join("plots");
        std::fs::create_dir_all(&plots)?;
        let chart = |title: String, x_label: &str, y_label: &str, series: &[Series]| LineChart {
            title,
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: series.to_vec(),
            log_y: false,
        };
        let by_bond = chart(
            format!("{name}: S / bound per bond after training"),
            "bond",
            "S / ln(min cut)",
            &self.final_ee,
        );
        let title = format!("{name}: middle-bond entropy over training (dashed: random init)");
        let by_epoch = chart(title, "epoch", "S (nats)", &self.mid_ee);
        for ext in ["png", "svg"] {
            draw_lines(&by_bond, &plots.join(format!("entropy-by-bond.{ext}")))?;
            draw_lines(&by_epoch, &plots.join(format!("entropy-vs-epoch.{ext}")))?;
        }
        Ok(())
    }
}

fn summarize(run: &RunDir, name: &str, description: &str, rows: &[(String, PathBuf)]) -> Result<()> {
    let mut c = Comparison {
        md: format!("# experiment: {name}\n\n{description}\n\n| variant | test acc | train acc | layer | S per bond (last epoch) | random init S per bond | S/bound |\n|---|---|---|---|---|---|---|\n"),
        csv: "variant,test_acc,train_acc,layer,bond,bond_dim,entropy,bound,baseline_mean,baseline_std\n".to_string(),
        ..Comparison::default()
    };
    for (i, (variant, dir)) in rows.iter().enumerate() {
        c.add(i, variant, &VariantRecords::read(dir));
    }
    run.write_file("comparison.csv", c.csv.as_bytes())?;
    c.draw(run, name)?;
    c.md.push_str("\nPer-variant run directories hold metrics, entanglement.jsonl and plots; comparison.csv has every number above.\n");
    run.write_summary(&c.md)?;
    print!("{}", c.md);
    Ok(())
}
