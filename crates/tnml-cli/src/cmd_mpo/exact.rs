//! `tnml mpo compress` at given bonds: TT-SVD of one matrix, its truncation and the
//! entanglement of every bond.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use tnml_core::{check_modes, mpo_file, EntanglementProfile, Mpo, TruncParams, TruncReport};

use super::args::CompressArgs;
use super::matrix_source::read_safetensors_matrix;
use crate::run_dir::RunDir;
use crate::run_files;
use crate::run_files::RunConfig;
use crate::runtime::check_memory;

#[derive(Serialize)]
struct BondRecord {
    bond: usize,
    bond_dim: usize,
    rank_cap: usize,
    discarded_weight: f64,
    entropy_exact: f64,
    entropy_compressed: f64,
    bound_exact: f64,
    bound_compressed: f64,
}

/// Runs `tnml mpo compress` at given bonds (`--max-bond`, `--cutoff`), not `--auto`.
pub(super) fn compress(args: &CompressArgs) -> Result<()> {
    let params = args.trunc.params()?;
    // the modes and their products, checked, before any matrix exists
    check_modes("in_modes", &args.in_modes)?;
    check_modes("out_modes", &args.out_modes)?;
    let product = |modes: &[usize], flag: &str| {
        modes
            .iter()
            .try_fold(1usize, |p, &m| p.checked_mul(m))
            .with_context(|| format!("{flag} {modes:?}: the modes multiply past {}", usize::MAX))
    };
    let (rows, cols) = (
        product(&args.out_modes, "--out-modes")?,
        product(&args.in_modes, "--in-modes")?,
    );
    // the matrix, two TT-SVDs of it (each a few copies) and the reconstruction: ~5 copies
    check_memory(
        (rows as u128) * (cols as u128) * 8 * 5,
        &format!("a {rows}x{cols} matrix and its decompositions"),
    )?;
    // the MPO's name in mpo.safetensors: the tensor's, or the synthetic matrix's kind
    let (source, name, w) = match &args.input {
        Some(path) => {
            // its size is bounded by the file's; the modes are checked against it by from_dense
            let (name, w) = read_safetensors_matrix(path, args.tensor.as_deref())?;
            (format!("{}:{name}", path.display()), name, w)
        }
        None => (
            format!("synthetic {} (seed {})", args.matrix.name(), args.seed.seed),
            args.matrix.name().to_string(),
            args.matrix.build(rows, cols, args.seed.seed)?,
        ),
    };

    let t0 = Instant::now();
    let (exact, _) = Mpo::from_dense(w.as_ref(), &args.in_modes, &args.out_modes, &TruncParams::exact())
        .context("decomposing the matrix")?;
    let exact_profile = exact.entanglement_profile()?;
    let (mpo, report) = Mpo::from_dense(w.as_ref(), &args.in_modes, &args.out_modes, &params)?;
    let profile = mpo.entanglement_profile()?;
    let seconds = t0.elapsed().as_secs_f64();
    let rel_error = match mpo.to_dense() {
        Ok(back) => Some((&back - &w).norm_l2() / w.norm_l2()),
        Err(_) => None,
    };
    // everything above is checked and computed before the run directory exists
    let mut run = RunDir::create(args.out.as_deref(), "mpo-compress")?;
    run.write_config(&RunConfig::new(
        "mpo compress",
        Some(args),
        serde_json::json!({
            "source": source,
            "trunc": { "max_bond": args.trunc.max_bond, "cutoff": args.trunc.cutoff, "min_bond": 1 },
        }),
    ))?;

    let caps = mpo.rank_caps();
    let records: Vec<BondRecord> = (0..mpo.len() - 1)
        .map(|i| BondRecord {
            bond: i + 1,
            bond_dim: mpo.bond_dims()[i],
            rank_cap: caps[i],
            discarded_weight: report.bonds[i].discarded_weight,
            entropy_exact: exact_profile.bonds[i].entropy,
            entropy_compressed: profile.bonds[i].entropy,
            bound_exact: exact_profile.bonds[i].bound,
            bound_compressed: profile.bonds[i].bound,
        })
        .collect();
    for r in &records {
        run.log_metric(r)?;
    }
    run.write_file(
        "entanglement.csv",
        profile_csv(&exact_profile, &profile).as_bytes(),
    )?;
    run.write_file(
        run_files::MPO,
        &mpo_file::to_safetensors(&[(&name, &mpo)], &source)?,
    )?;
    let summary = summary(&source, &mpo, &report, &records, rel_error, seconds);
    run.write_summary(&summary)?;
    print!("{summary}");
    println!("\nwrote {}", run.path().display());
    Ok(())
}

fn profile_csv(exact: &EntanglementProfile, compressed: &EntanglementProfile) -> String {
    let mut s = String::from("bond,bond_dim_exact,bond_dim,entropy_exact,renyi2_exact,bound_exact,entropy,renyi2,bound,normalized\n");
    for (e, c) in exact.bonds.iter().zip(&compressed.bonds) {
        let _ = writeln!(
            s,
            "{},{},{},{:.12},{:.12},{:.12},{:.12},{:.12},{:.12},{:.12}",
            e.bond,
            e.bond_dim,
            c.bond_dim,
            e.entropy,
            e.renyi2,
            e.bound,
            c.entropy,
            c.renyi2,
            c.bound,
            c.normalized()
        );
    }
    s
}

fn summary(
    source: &str,
    mpo: &Mpo,
    report: &TruncReport,
    records: &[BondRecord],
    rel_error: Option<f64>,
    seconds: f64,
) -> String {
    let c = mpo.compression();
    let (rows, cols) = mpo.dense_shape();
    let mut s = String::new();
    let _ = writeln!(s, "# MPO compression\n");
    let _ = writeln!(s, "- matrix: {source}, {rows} x {cols}");
    let _ = writeln!(s, "- modes: in {:?}, out {:?}", mpo.in_modes(), mpo.out_modes());
    let _ = writeln!(
        s,
        "- bond dims: {:?} (rank caps {:?})",
        mpo.bond_dims(),
        mpo.rank_caps()
    );
    for clamp in &report.clamps {
        let _ = writeln!(
            s,
            "- bond {}: requested {} exceeds the rank cap, used {}",
            clamp.bond, clamp.requested, clamp.cap
        );
    }
    let _ = writeln!(
        s,
        "- parameters: {} MPO vs {} dense, rho = {:.6} (compression factor 1/rho = {:.2})",
        c.mpo_params,
        c.dense_params,
        c.ratio(),
        c.factor()
    );
    let _ = writeln!(
        s,
        "- total discarded weight: {:.3e}",
        report.total_discarded_weight()
    );
    if let Some(e) = rel_error {
        let _ = writeln!(s, "- relative Frobenius error ||W - W~|| / ||W||: {e:.3e}");
    }
    let _ = writeln!(s, "- time (both decompositions and profiles): {seconds:.3} s\n");
    let _ = writeln!(
        s,
        "| bond | dim | cap | discarded weight | S exact | S kept | bound (kept) | S/bound |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in records {
        let norm = if r.bound_compressed > 0.0 {
            r.entropy_compressed / r.bound_compressed
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3e} | {:.4} | {:.4} | {:.4} | {:.3} |",
            r.bond,
            r.bond_dim,
            r.rank_cap,
            r.discarded_weight,
            r.entropy_exact,
            r.entropy_compressed,
            r.bound_compressed,
            norm
        );
    }
    s
}
