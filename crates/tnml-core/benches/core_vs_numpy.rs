//! Benchmark of tnml-core against NumPy, measured in one run on the same matrices.
//!
//! Jobs: TT-SVD of a 1024x1024 matrix into (4,4,4,4,4)x(4,4,4,4,4) at bond 12 and at full rank,
//! the entanglement profile of that MPO, and a truncated SVD of a 400x400 matrix (keep 100).
//! Both sides run single-threaded (faer is built sequential; NumPy gets OPENBLAS_NUM_THREADS=1).
//!
//! ```text
//! bash bench/setup_python.sh                      # once: NumPy in bench/.venv
//! cargo bench -p tnml-core --bench core_vs_numpy  # prints the table and the ratios
//! ```
//! `TNML_BENCH_REPS` sets the repetitions (median reported, default 7); `TNML_PYTHON` the
//! interpreter (default bench/.venv/bin/python, then python3).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tnml_core::faer::Mat;
use tnml_core::{truncated_svd, Mpo, TruncParams};

fn median_time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    ts[ts.len() / 2]
}

fn gaussian_matrix(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Mat::from_fn(rows, cols, |_, _| {
        let (a, b): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    })
}

fn write_raw(path: &Path, m: &Mat<f64>) {
    let mut bytes = Vec::with_capacity(m.nrows() * m.ncols() * 8);
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            bytes.extend(m[(i, j)].to_le_bytes());
        }
    }
    std::fs::write(path, bytes).expect("writing bench matrix");
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("TNML_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

fn main() {
    let reps: usize = std::env::var("TNML_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let w = gaussian_matrix(1024, 1024, 1);
    let a = gaussian_matrix(400, 400, 2);
    let modes = [4, 4, 4, 4, 4];

    let bond12 = TruncParams::max_bond(12);
    let (mpo12, rep12) = Mpo::from_dense(w.as_ref(), &modes, &modes, &bond12).unwrap();
    let (full, _) = Mpo::from_dense(w.as_ref(), &modes, &modes, &TruncParams::exact()).unwrap();
    let entropies = full.entanglement_profile().unwrap().entropies();
    let keep100 = TruncParams::max_bond(100);

    let rust = [
        (
            "TT-SVD 1024x1024 -> (4^5)x(4^5), bond 12",
            median_time(reps, || {
                let (mpo, report) = Mpo::from_dense(w.as_ref(), &modes, &modes, &bond12).unwrap();
                std::hint::black_box((mpo, report.total_discarded_weight()));
            }),
        ),
        (
            "TT-SVD 1024x1024 -> (4^5)x(4^5), full rank",
            median_time(reps, || {
                let (mpo, report) =
                    Mpo::from_dense(w.as_ref(), &modes, &modes, &TruncParams::exact()).unwrap();
                std::hint::black_box((mpo, report.total_discarded_weight()));
            }),
        ),
        (
            "entanglement profile of the full-rank MPO",
            median_time(reps, || {
                full.entanglement_profile().unwrap();
            }),
        ),
        (
            "truncated SVD 400x400, keep 100",
            median_time(reps, || {
                truncated_svd(a.as_ref(), &keep100).unwrap();
            }),
        ),
    ];

    println!("tnml-core vs NumPy, single thread, median of {reps} runs");
    println!(
        "MPO at bond 12: bond dims {:?}, discarded weight {:.6}",
        mpo12.bond_dims(),
        rep12.total_discarded_weight()
    );
    println!(
        "full-rank bond dims {:?}, entropies {:.6?}",
        full.bond_dims(),
        entropies
    );

    let dir = std::env::temp_dir().join(format!("tnml-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (big, small) = (dir.join("w1024.f64"), dir.join("a400.f64"));
    write_raw(&big, &w);
    write_raw(&small, &a);
    let py = python();
    let output = Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/core_numpy.py"))
        .arg(&big)
        .arg(&small)
        .arg(reps.to_string())
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        // older OpenBLAS workarounds set on this machine slow a current NumPy down
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let numpy: Option<serde_json::Value> = match output {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            eprintln!(
                "NumPy reference failed ({}): {}",
                py.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            eprintln!("run `bash bench/setup_python.sh` once to install NumPy into bench/.venv");
            None
        }
        Err(e) => {
            eprintln!("could not run {}: {e}", py.display());
            None
        }
    };
    let keys = ["tt_svd_bond12", "tt_svd_full", "profile", "truncated_svd_400"];
    println!("\n| job | tnml (ms) | NumPy (ms) | NumPy / tnml |");
    println!("|---|---:|---:|---:|");
    for ((name, t), key) in rust.iter().zip(keys) {
        match numpy.as_ref().and_then(|v| v[key].as_f64()) {
            Some(np) => println!("| {name} | {:.2} | {:.2} | {:.2}x |", t * 1e3, np * 1e3, np / t),
            None => println!("| {name} | {:.2} | - | - |", t * 1e3),
        }
    }
    if let Some(v) = numpy {
        println!(
            "\nNumPy {} {}",
            v["numpy"],
            v.get("blas").map(|b| b.to_string()).unwrap_or_default()
        );
        let np_disc = v["check_discarded_weight_bond12"].as_f64().unwrap_or(f64::NAN);
        let np_ent: Vec<f64> = v["check_entropies"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        let max_ent_diff = np_ent
            .iter()
            .zip(&entropies)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "agreement: discarded weight at bond 12 differs by {:.1e}, entropies by at most {:.1e}, NumPy bond dims {}",
            (np_disc - rep12.total_discarded_weight()).abs(),
            max_ent_diff,
            v["check_bond_dims_full"]
        );
    }
}
