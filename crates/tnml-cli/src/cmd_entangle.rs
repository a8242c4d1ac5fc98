//! `tnml entangle <model or safetensors>`: entanglement per bond of every MPO layer of a tnml model,
//! or of every weight of a state_dict (e.g. a PyTorch model saved with `safetensors.torch`) viewed
//! as an exact MPO, modes chosen per weight unless given; truncation error and compression versus
//! bond dimension; for tnml models, test accuracy after truncation, with and without retraining.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tnml_core::{Mpo, TruncParams};
use tnml_data::Split;
use tnml_nn::checkpoint;
use tnml_nn::entangle::{
    mpo_records, truncation_curve, weights_entanglement, BondRecord, Modes, TruncationPoint,
    WeightEntanglement,
};
use tnml_nn::models::Affine;
use tnml_nn::train::{evaluate, train, Silent, TrainConfig};
use tnml_nn::weights::Skipped;
use tnml_nn::{MpoLinear, Net, NetConfig};

use crate::net::NetData;
use crate::run_dir::RunDir;
use crate::run_files;
use crate::runtime::check_memory;
use crate::runtime::device;

/// MPO layers by name.
type NamedMpos = Vec<(String, Mpo)>;

/// Arguments of `tnml entangle`.
#[derive(Debug, Args)]
pub struct EntangleArgs {
    /// A tnml run or checkpoint directory, or a .safetensors file (a state_dict: every weight of
    /// 2 or more dimensions, rows = outputs as PyTorch's Linear.weight, convolutions
    /// `(out, in, kh, kw)` read as `out x (in kh kw)`; biases and integer tensors are skipped).
    pub input: PathBuf,
    /// Only this tensor of the safetensors file.
    #[arg(long)]
    pub tensor: Option<String>,
    /// Input modes of --tensor's matrix (multiply to its columns), e.g. 4,7,7,4.
    #[arg(long, value_delimiter = ',', requires = "out_modes")]
    pub in_modes: Vec<usize>,
    /// Output modes of --tensor's matrix (multiply to its rows), e.g. 4,4,4,4.
    #[arg(long, value_delimiter = ',', requires = "in_modes")]
    pub out_modes: Vec<usize>,
    /// Modes of one weight of a state_dict, `NAME=IN->OUT` (repeatable), e.g.
    /// `fc1.weight=4,7,7,4->4,4,4,4`; the other weights get balanced modes (up to --sites sites,
    /// each dimension's prime factors spread evenly; a weight whose split is lopsided, such as a
    /// 30522-word embedding, is left out with the size to pad it to).
    #[arg(long = "modes", value_name = "NAME=IN->OUT")]
    pub modes: Vec<String>,
    /// The most sites of the balanced modes chosen per weight (2 to 8; more sites give the
    /// entanglement more bonds to show).
    #[arg(long, default_value_t = tnml_core::modes::DEFAULT_SITES, value_parser = crate::args::parse_sites)]
    pub sites: usize,
    /// Also print the per-weight entanglement as JSON on stdout (the tables then go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Bond dimensions for the truncation table (default 1, 2, 4, 8, ... up to the largest bond).
    #[arg(long = "bond-dims", alias = "bonds", value_delimiter = ',')]
    pub bond_dims: Vec<usize>,
    /// tnml models: test accuracy after truncating every MPO layer to each bond dimension.
    #[arg(long)]
    pub accuracy: bool,
    /// tnml models: epochs of retraining (Adam 1e-3) after each truncation (implies --accuracy).
    #[arg(long, default_value_t = 0)]
    pub retrain_epochs: usize,
    #[command(flatten)]
    pub data: NetData,
    /// Run directory (default runs/entangle-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The options given on the command line (clap ids), filled in by `main`: options that do
    /// not apply to the input are refused, not ignored.
    #[arg(skip)]
    pub explicit: Vec<String>,
}

/// Options that only a tnml run directory uses (they evaluate the network on data).
const RUN_ONLY: [&str; 6] = [
    "accuracy",
    "retrain_epochs",
    "dataset",
    "data_dir",
    "train_limit",
    "test_limit",
];
/// Options that only a safetensors file uses.
const FILE_ONLY: [&str; 5] = ["tensor", "in_modes", "out_modes", "modes", "sites"];

impl EntangleArgs {
    /// Refuses an option the input will not use (it would be silently ignored).
    fn refuse_unused(&self, is_file: bool) -> Result<()> {
        let (foreign, owner) = if is_file {
            (&RUN_ONLY[..], "a tnml run directory (it evaluates the network)")
        } else {
            (
                &FILE_ONLY[..],
                "a safetensors state_dict; a tnml model's MPO layers have their own modes",
            )
        };
        if let Some(id) = self.explicit.iter().find(|id| foreign.contains(&id.as_str())) {
            bail!(
                "--{} applies to {owner}, not to {}",
                id.replace('_', "-"),
                self.input.display()
            );
        }
        Ok(())
    }
}

fn default_bonds(max: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut d = 1;
    while d < max {
        v.push(d);
        d *= 2;
    }
    v.push(max);
    v
}

fn table(recs: &[BondRecord]) -> String {
    let mut s = String::from("| layer | bond | D | S | bound | S/bound | Renyi-2 | discarded at D/2 |\n|---|---|---|---|---|---|---|---|\n");
    for r in recs {
        let half = (r.bond_dim / 2).max(1);
        let disc = r.discarded.get(half - 1).copied().unwrap_or(0.0);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} | {:.4} | {:.3} | {:.4} | {:.3e} |",
            r.layer, r.bond, r.bond_dim, r.entropy, r.bound, r.ratio, r.renyi2, disc
        );
    }
    s
}

/// The MPOs to analyse: every weight of a state_dict file (with how each was read), or the
/// MPO layers of a run's checkpoint (with the model, for `--accuracy`).
struct Source {
    layers: NamedMpos,
    model: Option<(NetConfig, Net)>,
    /// `weights.json` and its table (a state_dict file only).
    weights_json: Option<serde_json::Value>,
    weights_text: String,
}

fn read_source(args: &EntangleArgs, is_file: bool) -> Result<Source> {
    if is_file {
        let bytes =
            std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
        if tnml_core::mpo_file::is_mpo_file(&bytes) {
            return mpo_file_source(args, &bytes);
        }
        let (entries, skipped) = state_dict_layers(args, &bytes)?;
        let layers = entries
            .iter()
            .map(|(w, m)| (w.layer.clone(), m.clone()))
            .collect();
        let records: Vec<&WeightEntanglement> = entries.iter().map(|(w, _)| w).collect();
        let weights_json = serde_json::json!({
            "file": args.input.display().to_string(),
            "weights": records,
            "skipped": skipped.iter().map(|(n, why)| serde_json::json!({"name": n, "why": why})).collect::<Vec<_>>(),
        });
        return Ok(Source {
            layers,
            model: None,
            weights_text: weights_table(&records, &skipped),
            weights_json: Some(weights_json),
        });
    }
    if !args.input.is_dir() {
        bail!(
            "{} is neither a safetensors file nor a run directory",
            args.input.display()
        );
    }
    let (header, net) = checkpoint::load(&checkpoint::resolve_dir(&args.input), &device())?;
    let layers = net
        .mpo_layers()
        .iter()
        .map(|(n, l)| l.to_mpo().map(|m| (n.clone(), m)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if layers.is_empty() {
        bail!(
            "{} has no MPO layers (a dense model: use `tnml net compress` first)",
            args.input.display()
        );
    }
    Ok(Source {
        layers,
        model: Some((header.net, net)),
        weights_json: None,
        weights_text: String::new(),
    })
}

/// The MPOs of an MPO file (`mpo compress`'s `mpo.safetensors`), analysed as they are: their
/// modes are their cores' (the options that choose modes of a weight are refused).
fn mpo_file_source(args: &EntangleArgs, bytes: &[u8]) -> Result<Source> {
    if let Some(id) = args.explicit.iter().find(|id| FILE_ONLY.contains(&id.as_str())) {
        bail!(
            "--{} chooses modes of a weight; {} is an MPO file, whose MPOs have their own modes",
            id.replace('_', "-"),
            args.input.display()
        );
    }
    let layers = tnml_core::mpo_file::from_safetensors(bytes, &args.input.display().to_string())?;
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let mut text = String::from("| MPO | in modes -> out modes | bonds |\n|---|---|---|\n");
    let mut mpos = Vec::new();
    for (name, mpo) in &layers {
        let (i, o, b) = (mpo.in_modes(), mpo.out_modes(), mpo.bond_dims());
        let _ = writeln!(text, "| {name} | {} -> {} | {} |", list(i), list(o), list(&b));
        mpos.push(serde_json::json!({"name": name, "in_modes": i, "out_modes": o, "bond_dims": b}));
    }
    Ok(Source {
        layers,
        model: None,
        weights_json: Some(serde_json::json!({"file": args.input.display().to_string(), "mpos": mpos})),
        weights_text: text,
    })
}

/// Runs `tnml entangle`.
pub fn run(args: &EntangleArgs) -> Result<()> {
    let is_file = args.input.is_file();
    args.refuse_unused(is_file)?;
    let source = read_source(args, is_file)?;
    let run = RunDir::create(args.out.as_deref(), "entangle")?;
    if let Some(j) = &source.weights_json {
        run.write_json("weights.json", j)?;
    }
    let mut recs = Vec::new();
    let mut curve: Vec<TruncationPoint> = Vec::new();
    for (name, mpo) in &source.layers {
        recs.extend(mpo_records(mpo, name, 0)?);
        let max = mpo.bond_dims().into_iter().max().unwrap_or(1);
        let bonds = if args.bond_dims.is_empty() {
            default_bonds(max)
        } else {
            args.bond_dims.clone()
        };
        curve.extend(truncation_curve(mpo, name, &bonds)?);
    }
    let mut csv = String::from("layer,max_bond,rel_error,params,rho\n");
    let mut summary = format!("# tnml entangle {}\n\n{}\n", args.input.display(), table(&recs));
    summary.push_str("\n| layer | max bond | relative error | params | rho |\n|---|---|---|---|---|\n");
    let mut out_text = source.weights_text.clone();
    out_text.push_str(&table(&recs));
    for p in &curve {
        let (layer, d, err, params, rho) = (&p.layer, p.max_bond, p.rel_error, p.params, p.rho);
        let _ = writeln!(csv, "{layer},{d},{err:.6e},{params},{rho:.6e}");
        let _ = writeln!(summary, "| {layer} | {d} | {err:.3e} | {params} | {rho:.4} |");
        let _ = writeln!(
            out_text,
            "{layer:<10} D <= {d:<4} relative error {err:.3e}  params {params:>8}  rho {rho:.4}"
        );
    }
    run.write_file(run_files::TRUNCATION, csv.as_bytes())?;
    run.write_json("entanglement.json", &recs)?;
    let lines = recs
        .iter()
        .map(serde_json::to_string)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    run.append_lines(run_files::ENTANGLEMENT, &lines)?;
    if args.json {
        eprint!("{out_text}");
        match &source.weights_json {
            Some(j) => println!("{}", serde_json::to_string_pretty(j)?),
            None => println!("{}", serde_json::to_string_pretty(&recs)?),
        }
    } else {
        print!("{out_text}");
    }
    if let Some((cfg, net)) = source
        .model
        .as_ref()
        .filter(|_| args.accuracy || args.retrain_epochs > 0)
    {
        summary.push_str(&accuracy_section(args, &run, cfg, net, &source.layers)?);
    }
    let files = crate::figures::plot_run(run.path(), &["png", "svg"])?;
    let _ = write!(summary, "\nPlots: {} files in plots/.\n", files.len());
    run.write_summary(&summary)?;
    eprintln!("run directory {}", run.path().display());
    Ok(())
}

/// `--accuracy` / `--retrain-epochs`: test accuracy of the model with every MPO layer truncated
/// at each bond cap (and retrained); writes `accuracy.csv`, prints a line per cap, returns the
/// summary's section.
fn accuracy_section(
    args: &EntangleArgs,
    run: &RunDir,
    cfg: &NetConfig,
    net: &Net,
    layers: &NamedMpos,
) -> Result<String> {
    let acc = accuracy_vs_bond(args, cfg, net, layers)?;
    let mut csv = String::from("max_bond,test_acc_truncated,test_acc_retrained\n");
    let mut md = String::from("\n| max bond | test acc truncated | after retraining |\n|---|---|---|\n");
    for (d, a, r) in &acc {
        let rs = r.map_or(String::new(), |v| format!("{v:.4}"));
        let _ = writeln!(csv, "{d},{a:.4},{rs}");
        let retrained = r.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v));
        let _ = writeln!(md, "| {d} | {:.2}% | {retrained} |", 100.0 * a);
        let line = format!(
            "D <= {d}: test accuracy {:.2}% truncated{}",
            100.0 * a,
            r.map_or(String::new(), |v| format!(", {:.2}% after retraining", 100.0 * v))
        );
        // with --json, stdout is the JSON alone
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    run.write_file("accuracy.csv", csv.as_bytes())?;
    Ok(md)
}

/// How each weight of a state_dict was read, and what was left out.
fn weights_table(weights: &[&WeightEntanglement], skipped: &Skipped) -> String {
    let mut s = String::from(
        "| weight | shape | matrix | in modes -> out modes | exact bonds |\n|---|---|---|---|---|\n",
    );
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    for w in weights {
        let _ = writeln!(
            s,
            "| {} | ({}) | {} x {} | {} -> {}{} | {} |",
            w.layer,
            list(&w.shape),
            w.rows,
            w.cols,
            list(&w.in_modes),
            list(&w.out_modes),
            if w.auto_modes { " (auto)" } else { "" },
            list(&w.bond_dims),
        );
    }
    if !skipped.is_empty() {
        let _ = writeln!(s, "left out: {}", tnml_nn::weights::describe_skipped(skipped));
    }
    s.push('\n');
    s
}

/// `NAME=IN->OUT` of `--modes`.
fn parse_modes(text: &str) -> Result<(String, Modes)> {
    let bad = || anyhow::anyhow!("--modes {text:?}: give NAME=IN->OUT, e.g. fc1.weight=4,7,7,4->4,4,4,4");
    let (name, spec) = text.rsplit_once('=').ok_or_else(bad)?;
    let (i, o) = spec.split_once("->").ok_or_else(bad)?;
    let list = |s: &str| -> Result<Vec<usize>> {
        s.split(',')
            .map(|v| v.trim().parse::<usize>().map_err(|_| bad()))
            .collect()
    };
    let (i, o) = (list(i)?, list(o)?);
    if name.is_empty() || i.contains(&0) || o.contains(&0) {
        return Err(bad().context("a mode of 0 or an empty name"));
    }
    Ok((name.to_string(), (i, o)))
}

/// The weights of a safetensors file as exact MPOs (all, or `--tensor`), with the tensors left
/// out and why.
fn state_dict_layers(args: &EntangleArgs, bytes: &[u8]) -> Result<(Vec<(WeightEntanglement, Mpo)>, Skipped)> {
    let file = args.input.display().to_string();
    let (mut weights, skipped) = tnml_nn::weights::weight_matrices(bytes, &file)?;
    let mut modes = BTreeMap::new();
    for m in &args.modes {
        let (name, v) = parse_modes(m)?;
        if modes.contains_key(&name) {
            bail!("--modes names {name} twice: give one NAME=IN->OUT per weight");
        }
        modes.insert(name, v);
    }
    if let Some(t) = &args.tensor {
        let names: Vec<String> = weights.iter().map(|w| w.name.clone()).collect();
        weights.retain(|w| &w.name == t);
        if weights.is_empty() {
            bail!(
                "{file}: no weight {t:?} of 2 or more dimensions (it has: {})",
                names.join(", ")
            );
        }
        if !args.in_modes.is_empty() {
            modes.insert(t.clone(), (args.in_modes.clone(), args.out_modes.clone()));
        }
    } else if !args.in_modes.is_empty() {
        match weights.as_slice() {
            [only] => {
                modes.insert(only.name.clone(), (args.in_modes.clone(), args.out_modes.clone()));
            }
            _ => bail!(
                "--in-modes/--out-modes apply to one weight: name it with --tensor, or give --modes NAME=IN->OUT per weight ({} has {})",
                file,
                weights.len()
            ),
        }
    }
    for w in &weights {
        check_memory(
            (w.matrix.nrows() as u128) * (w.matrix.ncols() as u128) * 8 * 6,
            &format!(
                "{} ({}x{}) and its decompositions",
                w.name,
                w.matrix.nrows(),
                w.matrix.ncols()
            ),
        )?;
    }
    let (entries, odd) = weights_entanglement(&weights, &modes, args.sites)?;
    let mut skipped = skipped;
    skipped.extend(odd);
    if entries.is_empty() {
        bail!(
            "{file}: no weight can be analysed ({})",
            skipped
                .iter()
                .map(|(n, why)| format!("{n}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok((entries, skipped))
}

/// Test accuracy with every MPO layer truncated to each bond, and after retraining.
fn accuracy_vs_bond(
    args: &EntangleArgs,
    cfg: &NetConfig,
    net: &Net,
    layers: &[(String, Mpo)],
) -> Result<Vec<(usize, f64, Option<f64>)>> {
    let dev = device();
    let test_set = args.data.load(Split::Test, cfg.arch, 0)?;
    let train_set = if args.retrain_epochs > 0 {
        Some(args.data.load(Split::Train, cfg.arch, 0)?)
    } else {
        None
    };
    let max = layers.iter().flat_map(|(_, m)| m.bond_dims()).max().unwrap_or(1);
    let bonds = if args.bond_dims.is_empty() {
        default_bonds(max)
    } else {
        args.bond_dims.clone()
    };
    let mut out = Vec::new();
    for &d in &bonds {
        let mut t = net.clone();
        for (name, mpo) in layers {
            let mut m = mpo.clone();
            // the weight dropped at each D is in the truncation table (truncation_curve)
            let _ = m.truncate(&TruncParams::max_bond(d))?;
            let bias = t
                .mpo_layers()
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, l)| l.bias.as_ref().map(|b| tnml_nn::mpo_linear::to_vec(b.val())));
            let layer = MpoLinear::from_mpo(&m, bias.as_deref(), &dev)?;
            match t.affine_mut(name) {
                Some(a) => *a = Affine::Mpo(layer),
                None => bail!("layer {name}: truncation of VGG's conv5 MPOs is not supported here"),
            }
        }
        let (_, acc) = evaluate(&t, &test_set, 1000, &dev);
        let retrained = if let Some(train_set) = &train_set {
            let tc = TrainConfig::adam(args.retrain_epochs, 100, 1e-3, 0);
            let (n, _) = train(
                t,
                tc.build_optimizer(),
                &tc,
                train_set,
                None,
                1,
                &dev,
                &mut Silent,
            )?;
            Some(evaluate(&n, &test_set, 1000, &dev).1)
        } else {
            None
        };
        out.push((d, acc, retrained));
    }
    Ok(out)
}
