//! `cargo bench -p tnml-nn --bench mpo_vs_torch`: MpoLinear forward+backward against PyTorch CPU
//! (the same layer written the straightforward way, `bench/mpo_torch.py`) in the same run, and
//! one FC2-MPO training epoch. Prints seconds and ratios (> 1 means tnml is faster).
//!
//! Needs `bench/.venv` with torch (`bench/setup_python.sh torch`); without it only tnml's side
//! is printed. Threads: `RAYON_NUM_THREADS` (default: all cores), passed to torch too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::nn::LinearConfig;
use burn::tensor::{Device, Tensor, TensorData};
use tnml_nn::init::Normal;
use tnml_nn::train::{train, LabeledImages, Silent, TrainConfig};
use tnml_nn::{Arch, MpoLinearConfig, MpoSpec, NetConfig, NormKind, Plan, WeightInit};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = root.join("bench/.venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(py)
}

fn torch(py: &Path, args: &[String]) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/mpo_torch.py");
    let out = Command::new(py).arg(script).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!("torch failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(out.stdout.split(|&b| b == b'\n').find(|l| !l.is_empty())?).ok()
}

fn join(v: &[usize]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

fn main() {
    let threads = rayon::current_num_threads();
    let py = python();
    if py.is_none() {
        eprintln!("bench/.venv has no torch: run `bash bench/setup_python.sh torch` for the ratios");
    }
    let dev = Device::flex().autodiff();
    println!("threads {threads} (tnml rayon, torch set_num_threads)");
    println!(
        "{:<30} {:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7} {:>8}",
        "layer (forward+backward)",
        "batch",
        "plan",
        "tnml ms",
        "L->R ms",
        "R->L ms",
        "W ms",
        "torch ms",
        "nn.Linear",
        "ratio",
        "vs dense"
    );
    let shapes: [(&[usize], &[usize], usize); 3] = [
        (&[4, 7, 7, 4], &[4, 4, 4, 4], 4),
        (&[4, 7, 7, 4], &[4, 4, 4, 4], 16),
        (&[4, 4, 8, 8, 4], &[4, 4, 8, 8, 4], 4),
    ];
    for (ins, outs, bond) in shapes {
        let spec = MpoSpec::uniform(ins, outs, bond).unwrap();
        let layer = MpoLinearConfig {
            spec: spec.clone(),
            init: WeightInit::He,
            bias: true,
            seed: 0,
        }
        .init(&dev);
        let dense = LinearConfig::new(spec.in_features(), spec.out_features()).init(&dev);
        for batch in [1usize, 100, 1024] {
            let x: Tensor<2> = Tensor::from_data(
                TensorData::new(
                    Normal::new(1).vec(batch * spec.in_features(), 1.0),
                    [batch, spec.in_features()],
                ),
                &dev,
            );
            let reps = if batch == 1024 { 5 } else { 15 };
            let t_mpo = time(reps, || {
                let _ = layer.forward(x.clone()).sum().backward();
            });
            let plan_ms: Vec<f64> = [Plan::LeftToRight, Plan::RightToLeft, Plan::Dense]
                .into_iter()
                .map(|plan| {
                    1e3 * time(reps, || {
                        let _ = layer.forward_with(x.clone(), plan).sum().backward();
                    })
                })
                .collect();
            let t_dense = time(reps, || {
                let _ = dense.forward(x.clone()).sum().backward();
            });
            let t_torch = py.as_ref().and_then(|p| {
                torch(
                    p,
                    &[
                        threads.to_string(),
                        "layer".into(),
                        join(ins),
                        join(outs),
                        bond.to_string(),
                        batch.to_string(),
                        reps.to_string(),
                    ],
                )
            });
            let torch_ms = t_torch
                .as_ref()
                .and_then(|v| v["mpo_s"].as_f64())
                .map(|s| s * 1e3);
            println!(
                "{:<30} {:>5} {:>6} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9} {:>10.3} {:>7} {:>8.2}",
                spec.to_string(),
                batch,
                match spec.best_plan(batch) {
                    Plan::LeftToRight => "L->R",
                    Plan::RightToLeft => "R->L",
                    Plan::Dense => "W",
                },
                t_mpo * 1e3,
                plan_ms[0],
                plan_ms[1],
                plan_ms[2],
                torch_ms.map_or("-".into(), |v| format!("{v:.3}")),
                t_dense * 1e3,
                torch_ms.map_or("-".into(), |v| format!("{:.2}x", v / (t_mpo * 1e3))),
                t_dense / t_mpo
            );
        }
    }

    // One epoch of FC2-MPO (D=16) on the shipped sample's 6,000 training images.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    let set = tnml_data::load(tnml_data::Dataset::MnistSample, &dir, tnml_data::Split::Train).unwrap();
    let data = LabeledImages {
        images: tnml_data::Images::from_set(&set),
        labels: set.labels.clone(),
    };
    let cfg = NetConfig {
        arch: Arch::Fc2,
        mpo: Some(Arch::Fc2.gao_preset(Some(16)).unwrap()),
        norm: NormKind::None,
        init: WeightInit::He,
        seed: 0,
        pairing: None,
    };
    let tc = TrainConfig::adam(1, 100, 1e-3, 0);
    let net = cfg.init(&dev).unwrap();
    let t = Instant::now();
    let _ = train(net, tc.build_optimizer(), &tc, &data, None, 1, &dev, &mut Silent).unwrap();
    let t_epoch = t.elapsed().as_secs_f64();
    let torch_epoch = py.as_ref().and_then(|p| {
        let tmp = std::env::temp_dir().join(format!("tnml-bench-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).ok()?;
        let (xi, yi) = (tmp.join("x.f32"), tmp.join("y.u8"));
        let bytes: Vec<u8> = data.images.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&xi, bytes).ok()?;
        std::fs::write(&yi, &data.labels).ok()?;
        let r = torch(
            p,
            &[
                threads.to_string(),
                "epoch".into(),
                xi.display().to_string(),
                yi.display().to_string(),
                data.len().to_string(),
                "16".into(),
            ],
        );
        let _ = std::fs::remove_dir_all(&tmp);
        r.and_then(|v| v["epoch_s"].as_f64())
    });
    println!(
        "FC2-MPO D=16 epoch, {} images, batch 100, Adam: tnml {:.2} s, torch {}, ratio {}",
        data.len(),
        t_epoch,
        torch_epoch.map_or("-".into(), |v| format!("{v:.2} s")),
        torch_epoch.map_or("-".into(), |v| format!("{:.2}x", v / t_epoch))
    );
}
