//! The gradient trainer against the PyTorch reference in bench/mps_gradient_torch.py, in one run:
//! the same training features (linear map, 14x14), the same near-identity start, the same
//! minibatches in the same order (the trainer's [`EpochOrders`]), batch 100, cross-entropy, Adam,
//! one epoch per bond; images/s of training and test accuracy after it.
//! PyTorch runs in two forms: `tree` (the transfer matrices of all sites multiplied pairwise as
//! batched matmuls, the style the issue names) and `chain` (batched vector-matrix products site
//! by site). The ratio printed is tnml's images/s over each form's.
//!
//! ```text
//! bash bench/setup_python.sh && bench/.venv/bin/pip install torch   # or TNML_PYTHON=...
//! cargo bench -p tnml-mps --bench gradient_vs_torch
//! ```
//! Environment: `TNML_BENCH_BONDS` (default `10,20`), `TNML_BENCH_EPOCHS` (default 1),
//! `TNML_BENCH_SAMPLES` (training images, default all of the set), `TNML_DATA_DIR` (a directory
//! with the full MNIST; default the shipped sample of 6,000 / 1,000 images),
//! `TNML_BENCH_THREADS` (thread counts, e.g. `1,2,4,8,16`; default all cores only: each count
//! runs tnml and PyTorch with that many threads, and tnml's speed-up over its first count is
//! printed), `TNML_BENCH_FORMS` (PyTorch forms, default `tree,chain`).
//!
//! Next to each measurement the bench prints the model of one batch of `B` on `T` threads
//! (`P = N d D^2` weights, `N` sites): `6 B N d D^2` flops, and the bytes the CPU engine moves:
//! each of the batch's `K` blocks (fixed by `B`: 8 at batch 100) reads the `f32` cores twice
//! (`8 K P`), the partial contractions and the gradient factors are written and read
//! (`~20 B N D (1 + d)`), Adam forms each site's gradient from the factors and reads `w, m, v`
//! and writes `m, v`, the new weights and their `f32` image (`52 P`). No term grows with `T`
//! (the per-thread slices before wrote a gradient each, `16 T P + 4 T P`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tnml_data::{load, Dataset, Images, Split};
use tnml_mps::{
    embed_batch, train_gradient, EpochOrders, FeatureMap, GradientConfig, Loss, MpsClassifier, Silent,
    SiteFeatures,
};

mod common;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// 14x14 pixels and labels of a split.
fn pixels(dataset: Dataset, dir: &Path, split: Split, limit: usize) -> (Vec<f32>, Vec<usize>) {
    let set = load(dataset, dir, split).unwrap();
    let n = limit.min(set.labels.len());
    let set = set.take(n);
    let labels = set.labels.iter().map(|&l| usize::from(l)).collect();
    (Images::from_set(&set).avg_pool2x2().unwrap().data, labels)
}

/// Sample-major `[n, sites, d]` little-endian f32, as the reference reads it.
fn write_features(path: &Path, feats: &SiteFeatures) {
    let (n, d, sites) = (feats.samples, feats.dim, feats.sites.len());
    let mut bytes = Vec::with_capacity(n * sites * d * 4);
    for i in 0..n {
        for site in &feats.sites {
            for v in &site[i * d..(i + 1) * d] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// The model of one batch of `batch` at `bond` (14x14, d = 2): GFLOP and MB moved through
/// memory by the CPU engine (see the module docs); the same on any number of threads.
fn batch_model(bond: usize, batch: usize) -> (f64, f64) {
    let (n, d, b) = (196.0, 2.0, bond as f64);
    let p = n * d * b * b;
    let k = tnml_mps::gradient::block_ranges(batch).len() as f64;
    let flops = 6.0 * batch as f64 * p;
    let bytes = 8.0 * k * p + 52.0 * p + 20.0 * batch as f64 * n * b * (1.0 + d);
    (flops / 1e9, bytes / 1e6)
}

fn main() {
    let bonds: Vec<usize> = std::env::var("TNML_BENCH_BONDS")
        .unwrap_or_else(|_| "10,20".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("TNML_BENCH_BONDS: comma-separated integers")
        })
        .collect();
    let epochs: usize = env_or("TNML_BENCH_EPOCHS", 1);
    let limit: usize = env_or("TNML_BENCH_SAMPLES", usize::MAX);
    let (dataset, dir) = match std::env::var("TNML_DATA_DIR") {
        Ok(d) => (Dataset::Mnist, PathBuf::from(d).join("mnist")),
        Err(_) => (
            Dataset::MnistSample,
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample"),
        ),
    };
    let (x, y) = pixels(dataset, &dir, Split::Train, limit);
    let (xt, yt) = pixels(dataset, &dir, Split::Test, usize::MAX);
    let map = FeatureMap::Linear;
    let (feats, test) = (
        embed_batch(map, &x, 196).unwrap(),
        embed_batch(map, &xt, 196).unwrap(),
    );
    let cores = rayon::current_num_threads();
    let thread_counts: Vec<usize> = std::env::var("TNML_BENCH_THREADS")
        .map(|t| {
            t.split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .expect("TNML_BENCH_THREADS: comma-separated integers")
                })
                .collect()
        })
        .unwrap_or_else(|_| vec![cores]);
    let forms: Vec<String> = std::env::var("TNML_BENCH_FORMS")
        .unwrap_or_else(|_| "tree,chain".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let tmp = std::env::temp_dir().join(format!("tnml-gradient-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    write_features(&tmp.join("train.f32"), &feats);
    write_features(&tmp.join("test.f32"), &test);
    common::write_labels(&tmp.join("train.u32"), &y);
    common::write_labels(&tmp.join("test.u32"), &yt);
    println!(
        "MPS gradient trainer, {} training / {} test images 14x14, linear map, batch 100, Adam lr 1e-3, cross-entropy, {epochs} epoch(s), threads {thread_counts:?} of {cores} cores",
        y.len(),
        yt.len()
    );
    for &bond in &bonds {
        let start = MpsClassifier::near_identity((14, 14), 10, map, bond, 98, 1e-2, 1).unwrap();
        let config = GradientConfig {
            epochs,
            batch_size: 100,
            learning_rate: 1e-3,
            loss: Loss::CrossEntropy,
            seed: 1,
            schedule: tnml_mps::LrSchedule::Constant,
            shift: 0,
            device: tnml_mps::Device::Cpu,
            flip: false,
        };
        let mut rates = Vec::new();
        for &threads in &thread_counts {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut model = start.clone();
            let t0 = Instant::now();
            pool.install(|| train_gradient(&mut model, &feats, &y, &config, &mut Silent).unwrap());
            let secs = t0.elapsed().as_secs_f64();
            let rate = (epochs * y.len()) as f64 / secs;
            let acc = 1.0 - model.scores(&test).unwrap().error_rate(&yt);
            let speedup = rate / rates.first().copied().unwrap_or(rate);
            let (gflop, mb) = batch_model(bond, 100);
            println!(
                "bond {bond}  tnml, {threads:2} threads: {rate:8.0} images/s ({secs:.2} s, {speedup:.2}x the first count), test accuracy {:.2}%; per batch {gflop:.2} GFLOP, ~{mb:.0} MB moved",
                100.0 * acc
            );
            rates.push(rate);
        }
        let shapes = common::write_model(&tmp.join("model.f32"), &start);
        // the trainer's own minibatch order, so both train on the same batches
        let mut orders = EpochOrders::new(y.len(), config.seed);
        let order_bytes: Vec<u8> = (0..epochs)
            .flat_map(|_| orders.next_epoch())
            .flat_map(|i| (i as u32).to_le_bytes())
            .collect();
        std::fs::write(tmp.join("order.u32"), order_bytes).unwrap();
        let manifest = serde_json::json!({
            "samples": y.len(), "test_samples": yt.len(), "sites": 196, "dim": 2, "labels": 10,
            "label_site": start.label_site(), "shapes": shapes, "batch_size": 100, "lr": 1e-3,
            "features": tmp.join("train.f32"), "labels_file": tmp.join("train.u32"),
            "test_features": tmp.join("test.f32"), "test_labels_file": tmp.join("test.u32"),
            "model": tmp.join("model.f32"), "order": tmp.join("order.u32"),
        });
        std::fs::write(tmp.join("manifest.json"), manifest.to_string()).unwrap();
        for (form, (ti, &threads)) in forms
            .iter()
            .flat_map(|f| thread_counts.iter().enumerate().map(move |t| (f.as_str(), t)))
        {
            let rate = rates[ti];
            let out = Command::new(common::python())
                .arg(common::script("mps_gradient_torch.py"))
                .arg(tmp.join("manifest.json"))
                .args([form, &threads.to_string(), &epochs.to_string()])
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                    let r = v["images_per_second"].as_f64().unwrap();
                    println!(
                        "bond {bond}  PyTorch {form:5}, {threads:2} threads: {r:8.0} images/s ({:.2} s), test accuracy {:.2}%   tnml / PyTorch {form}: {:.2}x",
                        v["seconds"].as_f64().unwrap(),
                        100.0 * v["test_accuracy"].as_f64().unwrap(),
                        rate / r
                    );
                }
                Ok(o) => eprintln!(
                    "PyTorch reference ({form}) failed: {}\nit needs torch and numpy (TNML_PYTHON or bench/.venv)",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("could not run {}: {e}", common::python().display()),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
