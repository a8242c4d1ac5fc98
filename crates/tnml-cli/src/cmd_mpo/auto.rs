//! `tnml mpo compress --input FILE --auto --max-error E`: every weight of a state_dict as the
//! smallest MPO within a relative error, a bond dimension per bond chosen from the spectra
//! ([`tnml_core::allocate`]), next to the smallest single bond dimension meeting the same error.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tnml_core::allocate::{compress_to_error, smallest_uniform_bond, Compressed};
use tnml_core::{mpo_file, Mpo, TruncParams};
use tnml_nn::spec::MpoSpec;
use tnml_nn::weights::WeightMatrix;

use super::args::CompressArgs;
use crate::figures::plot_run;
use crate::run_dir::RunDir;
use crate::run_files;
use crate::run_files::RunConfig;
use crate::run_files::{BondChoiceRecord, BOND_CHOICES};
use crate::runtime::check_memory;

#[derive(Serialize)]
struct Choice {
    spec: String,
    bond_dims: Vec<usize>,
    params: usize,
    rho: f64,
    error: f64,
}

#[derive(Serialize)]
struct LayerRecord {
    layer: String,
    shape: Vec<usize>,
    rows: usize,
    cols: usize,
    dense_params: usize,
    exact_bond_dims: Vec<usize>,
    /// von Neumann entropy per bond of the exact MPO (nats), and its bound.
    entropy: Vec<f64>,
    bound: Vec<f64>,
    auto: Choice,
    /// The smallest uniform bond dimension within the same error.
    uniform: Choice,
    uniform_bond: usize,
    /// uniform params / auto params.
    saving: f64,
    /// The smallest MPO within the error has at least as many parameters as the matrix
    /// (`auto.rho >= 1`): the weight is kept dense (not in mpo.safetensors); `auto` says what
    /// it would have cost.
    kept_dense: bool,
    seconds: f64,
}

fn choice(c: &Compressed, dense: usize) -> Result<Choice> {
    let spec = MpoSpec::new(c.mpo.in_modes(), c.mpo.out_modes(), &c.bond_dims)?;
    Ok(Choice {
        spec: spec.to_string(),
        bond_dims: c.bond_dims.clone(),
        params: c.params,
        rho: c.params as f64 / dense as f64,
        error: c.error,
    })
}

/// Weights of at least this many entries are announced before their decomposition starts.
const LARGE_WEIGHT: usize = 1 << 20;

/// `--max-error`, `--input` and the modes' options, checked before anything is read.
fn checked_options(args: &CompressArgs) -> Result<(f64, &std::path::Path)> {
    let max_error = args
        .max_error
        .context("--auto needs --max-error E: the relative Frobenius error allowed per weight, e.g. 0.1")?;
    if !(0.0..1.0).contains(&max_error) {
        bail!("--max-error {max_error}: the relative error must lie in [0, 1)");
    }
    let path = args
        .input
        .as_ref()
        .context("--auto needs --input FILE.safetensors")?;
    let given_modes = !args.in_modes.is_empty() || !args.out_modes.is_empty();
    if given_modes && args.tensor.is_none() {
        bail!("--in-modes/--out-modes with --auto apply to one weight: name it with --tensor (without them, modes are chosen per weight)");
    }
    Ok((max_error, path))
}

/// The modes of weight `w`: the command line's, or balanced ones over `--sites`; `Err` with
/// the reason to leave it out (an all-zero or non-finite weight, a lopsided dimension).
fn weight_modes(
    args: &CompressArgs,
    w: &WeightMatrix,
) -> std::result::Result<(Vec<usize>, Vec<usize>), String> {
    if let Some(why) = tnml_nn::weights::unusable(w) {
        return Err(why);
    }
    if !args.in_modes.is_empty() || !args.out_modes.is_empty() {
        return Ok((args.in_modes.clone(), args.out_modes.clone()));
    }
    tnml_core::modes::layer_modes(w.matrix.nrows(), w.matrix.ncols(), args.sites)
        .map_err(|lopsided| format!("{lopsided} (--tensor with --in-modes/--out-modes)"))
}

/// One weight: its exact MPO, the smallest MPO within `max_error` bond by bond and the
/// smallest uniform one; the MPO is `None` when it is not smaller than the matrix (kept dense).
fn compress_weight(
    w: &WeightMatrix,
    modes: (Vec<usize>, Vec<usize>),
    max_error: f64,
) -> Result<(LayerRecord, Option<Mpo>)> {
    let (in_modes, out_modes) = modes;
    let (rows, cols) = (w.matrix.nrows(), w.matrix.ncols());
    check_memory(
        (rows as u128) * (cols as u128) * 8 * 6,
        &format!("{} ({rows}x{cols}) and its decompositions", w.name),
    )?;
    // a large weight takes minutes (the exact TT-SVD, then ~40 truncations): say so first
    if rows.saturating_mul(cols) >= LARGE_WEIGHT {
        eprintln!(
            "{}: {rows} x {cols}, modes {in_modes:?} -> {out_modes:?}: exact TT-SVD, then the bond search ...",
            w.name
        );
    }
    let t0 = Instant::now();
    let (exact, _) = Mpo::from_dense(w.matrix.as_ref(), &in_modes, &out_modes, &TruncParams::exact())
        .with_context(|| format!("{} (shape {:?} read as {rows} x {cols})", w.name, w.shape))?;
    let profile = exact.entanglement_profile()?;
    let auto = compress_to_error(&exact, max_error)?;
    let uni = smallest_uniform_bond(&exact, max_error)?;
    let dense = rows * cols;
    let rec = LayerRecord {
        layer: w.name.clone(),
        shape: w.shape.clone(),
        rows,
        cols,
        dense_params: dense,
        exact_bond_dims: exact.bond_dims(),
        entropy: profile.entropies(),
        bound: profile.bounds(),
        uniform_bond: uni.bond_dims.iter().copied().max().unwrap_or(1),
        saving: uni.params as f64 / auto.params as f64,
        kept_dense: auto.params >= dense,
        auto: choice(&auto, dense)?,
        uniform: choice(&uni, dense)?,
        seconds: t0.elapsed().as_secs_f64(),
    };
    eprintln!(
        "{}: {} params (rho {:.4}, error {:.4}) vs uniform D={} {} params: {:.2}x fewer ({:.1} s){}",
        rec.layer,
        rec.auto.params,
        rec.auto.rho,
        rec.auto.error,
        rec.uniform_bond,
        rec.uniform.params,
        rec.saving,
        rec.seconds,
        if rec.kept_dense {
            "; not smaller than the matrix: kept dense"
        } else {
            ""
        }
    );
    let mpo = (!rec.kept_dense).then_some(auto.mpo);
    Ok((rec, mpo))
}

/// Runs `tnml mpo compress --auto`.
pub(super) fn compress_auto(args: &CompressArgs) -> Result<()> {
    let (max_error, path) = checked_options(args)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = path.display().to_string();
    let (mut weights, mut skipped) = tnml_nn::weights::weight_matrices(&bytes, &file)?;
    if let Some(t) = &args.tensor {
        let names: Vec<String> = weights.iter().map(|w| w.name.clone()).collect();
        weights.retain(|w| &w.name == t);
        if weights.is_empty() {
            bail!("{file}: no weight {t:?} (it has: {})", names.join(", "));
        }
    }
    let t_all = Instant::now();
    let mut records = Vec::new();
    let mut mpos = Vec::new();
    for w in &weights {
        // one odd weight is left out with its reason; the others are compressed
        let modes = match weight_modes(args, w) {
            Ok(m) => m,
            Err(why) => {
                eprintln!("{}: left out ({why})", w.name);
                skipped.push((w.name.clone(), why));
                continue;
            }
        };
        let (rec, mpo) = compress_weight(w, modes, max_error)?;
        if let Some(mpo) = mpo {
            mpos.push((w.name.clone(), mpo));
        }
        records.push(rec);
    }
    if records.is_empty() {
        let why: Vec<String> = skipped.iter().map(|(n, why)| format!("{n}: {why}")).collect();
        bail!("{file}: no weight can be compressed ({})", why.join("; "));
    }
    // everything above is computed before the run directory exists
    let outcome = Outcome {
        file,
        max_error,
        records,
        mpos,
        skipped,
        seconds: t_all.elapsed().as_secs_f64(),
    };
    write_run(args, &outcome)
}

/// What `--auto` found, for the run directory.
struct Outcome {
    file: String,
    max_error: f64,
    records: Vec<LayerRecord>,
    /// The weights written as MPOs (not those kept dense).
    mpos: Vec<(String, Mpo)>,
    skipped: Vec<(String, String)>,
    seconds: f64,
}

/// config.json, auto.json, bond-choices.json, mpo.safetensors (when a weight is compressed),
/// figures and the summary (also printed).
fn write_run(args: &CompressArgs, o: &Outcome) -> Result<()> {
    let run = RunDir::create(args.out.as_deref(), "mpo-compress")?;
    run.write_config(&RunConfig::new(
        "mpo compress --auto",
        None::<&()>,
        serde_json::json!({
            "input": o.file,
            "max_error": o.max_error,
            "skipped": o.skipped,
        }),
    ))?;
    run.write_json("auto.json", &o.records)?;
    let choices: Vec<BondChoiceRecord> = o
        .records
        .iter()
        .map(|r| BondChoiceRecord {
            layer: r.layer.clone(),
            entropy: r.entropy.clone(),
            exact_bond_dims: r.exact_bond_dims.clone(),
            chosen: r.auto.bond_dims.clone(),
            kept_dense: r.kept_dense,
            uniform: Some(r.uniform.bond_dims.clone()),
        })
        .collect();
    run.write_json(BOND_CHOICES, &choices)?;
    if o.mpos.is_empty() {
        eprintln!("no weight is smaller as an MPO within the error: no mpo.safetensors is written");
    } else {
        let named: Vec<(&str, &Mpo)> = o.mpos.iter().map(|(n, m)| (n.as_str(), m)).collect();
        run.write_file(run_files::MPO, &mpo_file::to_safetensors(&named, &o.file)?)?;
    }
    plot_run(run.path(), &["png"])?;
    let md = summary(&o.file, o.max_error, &o.records, &o.skipped, o.seconds);
    run.write_summary(&md)?;
    print!("{md}");
    println!("\nwrote {}", run.path().display());
    Ok(())
}

fn summary(
    file: &str,
    max_error: f64,
    records: &[LayerRecord],
    skipped: &[(String, String)],
    seconds: f64,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Automatic MPO compression\n");
    let _ = writeln!(
        s,
        "- input: {file}; relative error allowed per weight: {max_error}"
    );
    if !skipped.is_empty() {
        let _ = writeln!(s, "- left out: {}", tnml_nn::weights::describe_skipped(skipped));
    }
    // a weight kept dense counts with its dense parameters (that is what the file holds)
    let held = |r: &LayerRecord, p: usize| if r.kept_dense { r.dense_params } else { p };
    let (auto, uni, dense): (usize, usize, usize) = records.iter().fold((0, 0, 0), |(a, u, d), r| {
        (
            a + held(r, r.auto.params),
            u + held(r, r.uniform.params),
            d + r.dense_params,
        )
    });
    let kept: Vec<&str> = records
        .iter()
        .filter(|r| r.kept_dense)
        .map(|r| r.layer.as_str())
        .collect();
    let _ = writeln!(
        s,
        "- all weights: {auto} params chosen per bond, {uni} with one bond dimension per weight, {dense} dense ({:.2}x fewer than uniform, rho {:.4}, weights kept dense counted dense); {seconds:.1} s",
        uni as f64 / auto.max(1) as f64,
        auto as f64 / dense.max(1) as f64
    );
    let _ = writeln!(
        s,
        "- {} of {} weights compressed; {} kept dense (their smallest MPO within the error is not smaller than the matrix){}\n",
        records.len() - kept.len(),
        records.len(),
        kept.len(),
        if kept.is_empty() { String::new() } else { format!(": {}", kept.join(", ")) }
    );
    let _ = writeln!(s, "| weight | shape | chosen (per bond) | params | rho | error | uniform | params | error | uniform / chosen |");
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---|---:|---:|---:|");
    for r in records {
        let _ = writeln!(
            s,
            "| {}{} | {:?} | {} | {} | {:.4} | {:.4} | {} | {} | {:.4} | {:.2}x |",
            r.layer,
            if r.kept_dense { " (kept dense)" } else { "" },
            r.shape,
            r.auto.spec,
            r.auto.params,
            r.auto.rho,
            r.auto.error,
            r.uniform.spec,
            r.uniform.params,
            r.uniform.error,
            r.saving
        );
    }
    let _ = writeln!(
        s,
        "\n## Why these bonds: entropy per bond (nats) and the dimension chosen\n"
    );
    for r in records {
        let row: Vec<String> = r
            .entropy
            .iter()
            .zip(&r.auto.bond_dims)
            .zip(&r.exact_bond_dims)
            .map(|((e, d), x)| format!("S={e:.2}: D={d}/{x}"))
            .collect();
        let _ = writeln!(s, "- {}: {}", r.layer, row.join(", "));
    }
    s
}
