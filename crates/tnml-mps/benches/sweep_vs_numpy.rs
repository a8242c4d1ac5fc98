//! One full sweep of the MPS classifier (both directions) at bond 20 on N_T images of the shipped
//! MNIST sample (14x14), against the NumPy reference in bench/mps_sweep_numpy.py on the same
//! data and the same starting model, in one run. Also prints the FLOP count of the sweep, the
//! achieved GFLOP/s, and the f32 GEMM rate faer reaches here on the sweep's dominant shape.
//!
//! ```text
//! bash bench/setup_python.sh
//! cargo bench -p tnml-mps --bench sweep_vs_numpy       # TNML_BENCH_SAMPLES (default 2000)
//! ```

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use tnml_data::{load, Dataset, Images, Split};
use tnml_mps::gemm::gemm;
use tnml_mps::{embed_batch, train_sweeps, FeatureMap, MpsClassifier, Silent, SweepConfig};

mod common;

fn main() {
    let n: usize = std::env::var("TNML_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let bond = 20;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    let set = load(Dataset::MnistSample, &dir, Split::Train).unwrap().take(n);
    let labels: Vec<usize> = set.labels.iter().map(|&l| usize::from(l)).collect();
    let x = Images::from_set(&set).avg_pool2x2().unwrap().data;
    let map = FeatureMap::Trig;
    let feats = embed_batch(map, &x, 196).unwrap();
    let start = MpsClassifier::from_class_means(&x, &labels, (14, 14), 10, map, bond)
        .unwrap()
        .0;
    let config = SweepConfig {
        sweeps: 1,
        schedule: SweepConfig::bond_schedule(&[bond], 1e-10),
        cg_passes: 3,
        refit_passes: 0,
        turn_site: None,
        ..SweepConfig::default()
    };

    // the dominant GEMM of a bond update: (N_T x D d^2) (D d^2 x L D)
    let (k, m) = (bond * 4, 10 * bond);
    let a: Vec<f32> = (0..n * k).map(|i| (i % 13) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * m).map(|i| (i % 7) as f32 * 0.1).collect();
    gemm(&a, n, k, &b, m);
    let reps = 20;
    let t0 = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(gemm(&a, n, k, &b, m));
    }
    let gemm_rate = 2.0 * (n * k * m) as f64 * reps as f64 / t0.elapsed().as_secs_f64() / 1e9;

    let mut model = start.clone();
    let t0 = Instant::now();
    let summary = train_sweeps(&mut model, &feats, &labels, &config, &mut Silent).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let s = &summary[0];

    // the same data and starting model for NumPy
    let tmp = std::env::temp_dir().join(format!("tnml-sweep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let feat_bytes: Vec<u8> = feats
        .sites
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(tmp.join("features.f32"), feat_bytes).unwrap();
    common::write_labels(&tmp.join("labels.u32"), &labels);
    let shapes = common::write_model(&tmp.join("model.f32"), &start);
    let manifest = serde_json::json!({
        "samples": n, "sites": 196, "dim": 2, "labels": 10, "max_bond": bond, "cutoff": config.trunc_at(1).cutoff,
        "cg_passes": config.cg_passes, "shapes": shapes,
        "features": tmp.join("features.f32"), "labels_file": tmp.join("labels.u32"), "model": tmp.join("model.f32"),
    });
    std::fs::write(tmp.join("manifest.json"), manifest.to_string()).unwrap();
    let py = common::python();
    let out = Command::new(&py)
        .arg(common::script("mps_sweep_numpy.py"))
        .arg(tmp.join("manifest.json"))
        .env("OPENBLAS_NUM_THREADS", rayon::current_num_threads().to_string())
        .env("OMP_NUM_THREADS", rayon::current_num_threads().to_string())
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output();
    let _ = std::fs::remove_dir_all(&tmp);

    println!("MPS classifier, one full sweep (both directions), bond {bond}, {n} training images 14x14, {} threads", rayon::current_num_threads());
    println!("tnml:  {secs:.2} s per sweep, {:.1} GFLOP, {:.1} GFLOP/s; train error after the sweep {:.4}, cost {:.5}, max bond {}",
        s.flops / 1e9, s.flops / secs / 1e9, s.train_error, s.cost, s.bond_dims.iter().max().unwrap());
    println!("faer f32 GEMM ({n} x {k}) x ({k} x {m}) on the same threads: {gemm_rate:.1} GFLOP/s (the sweep reaches {:.0}% of it)", 100.0 * s.flops / secs / 1e9 / gemm_rate);
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let np = v["seconds"].as_f64().unwrap();
            println!(
                "NumPy {}: {np:.2} s per sweep; train error {:.4}, cost {:.5}, max bond {}",
                v["numpy"], v["train_error"], v["cost"], v["max_bond_dim"]
            );
            println!("speed-up tnml / NumPy: {:.2}x", np / secs);
        }
        Ok(o) => eprintln!(
            "NumPy reference failed: {}\nrun `bash bench/setup_python.sh` once",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("could not run {}: {e}", py.display()),
    }
}
