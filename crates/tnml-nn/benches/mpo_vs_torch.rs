//! `cargo bench -p tnml-nn --bench mpo_vs_torch`: MpoLinear forward+backward against PyTorch CPU
//! (the same layer written the straightforward way, `bench/mpo_torch.py`) in the same run, and
//! one FC2-MPO training epoch. Prints seconds and ratios (> 1 means tnml is faster).
//!
//! Needs `bench/.venv` with torch (`bench/setup_python.sh torch`); without it only tnml's side
//! is printed. Threads: `RAYON_NUM_THREADS` (default: all cores), passed to torch too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use tnml_nn::init::Normal;
use tnml_nn::train::{train, LabeledImages, OptimizerKind, Silent, TrainConfig};
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

fn plan_name(plan: Plan) -> String {
    match plan {
        Plan::LeftToRight => "L->R".into(),
        Plan::RightToLeft => "R->L".into(),
        Plan::Dense => "W".into(),
        Plan::Split(m) => format!("split{m}"),
    }
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
    println!("threads {threads} (tnml rayon, torch set_num_threads); forward+backward, median ms");
    println!(
        "{:<26} {:>5} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "layer",
        "batch",
        "chosen",
        "tnml ms",
        "best ms",
        "chosen/",
        "sweep ms",
        "tlt-fac",
        "tlt-rec",
        "nn.Lin",
        "best pt",
        "vs best"
    );
    let shapes: [(&[usize], &[usize], usize); 4] = [
        (&[4, 7, 7, 4], &[4, 4, 4, 4], 4),
        (&[4, 7, 7, 4], &[4, 4, 4, 4], 16),
        (&[8, 8, 8, 8], &[8, 8, 8, 8], 4),
        (&[8, 8, 8, 8], &[8, 8, 8, 8], 16),
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
        for batch in [1usize, 100, 1024] {
            let x: Tensor<2> = Tensor::from_data(
                TensorData::new(
                    Normal::new(1).vec(batch * spec.in_features(), 1.0),
                    [batch, spec.in_features()],
                ),
                &dev,
            );
            let reps = if batch == 1024 { 5 } else { 15 };
            let chosen = spec.best_plan(batch);
            // every plan of the cost model, timed
            let plan_ms: Vec<(Plan, f64)> = spec
                .plan_costs(batch)
                .into_iter()
                .map(|(plan, _)| {
                    let ms = 1e3
                        * time(reps, || {
                            let _ = layer.forward_with(x.clone(), plan).sum().backward();
                        });
                    (plan, ms)
                })
                .collect();
            let t_chosen = plan_ms.iter().find(|p| p.0 == chosen).unwrap().1;
            let t_best = plan_ms.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let torch = py.as_ref().and_then(|p| {
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
            let form = |k: &str| torch.as_ref().and_then(|v| v[k].as_f64()).map(|s| s * 1e3);
            let forms = [
                "mpo_s",
                "tltorch_factorized_s",
                "tltorch_reconstructed_s",
                "dense_s",
            ]
            .map(form);
            let best_torch = forms.iter().flatten().copied().fold(f64::INFINITY, f64::min);
            let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
            println!(
                "{:<26} {:>5} {:>9} {:>9.3} {:>9.3} {:>6.2}x {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
                spec.to_string(),
                batch,
                plan_name(chosen),
                t_chosen,
                t_best,
                t_chosen / t_best,
                show(forms[0]),
                show(forms[1]),
                show(forms[2]),
                show(forms[3]),
                show(best_torch.is_finite().then_some(best_torch)),
                if best_torch.is_finite() {
                    format!("{:.2}x", best_torch / t_chosen)
                } else {
                    "-".into()
                }
            );
            if std::env::var_os("TNML_BENCH_PLANS").is_some() {
                for (plan, ms) in &plan_ms {
                    println!("    {:>9} {ms:9.3} ms", plan_name(*plan));
                }
            }
        }
    }

    epochs(threads, py.as_deref(), &dev);
}

/// MNIST training images: the full 60,000 from `$TNML_DATA_DIR` when it holds them, else the
/// shipped 6,000-image sample.
fn mnist() -> LabeledImages {
    let full = std::env::var_os("TNML_DATA_DIR").and_then(|d| {
        let dir = Path::new(&d).join("mnist");
        tnml_data::load(tnml_data::Dataset::Mnist, &dir, tnml_data::Split::Train)
            .or_else(|_| tnml_data::load(tnml_data::Dataset::Mnist, Path::new(&d), tnml_data::Split::Train))
            .ok()
    });
    let set = full.unwrap_or_else(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
        tnml_data::load(tnml_data::Dataset::MnistSample, &dir, tnml_data::Split::Train).unwrap()
    });
    LabeledImages {
        images: tnml_data::Images::from_set(&set),
        labels: set.labels.clone(),
    }
}

/// One training epoch (batch 100) of FC2 and LeNet-5, dense and with Gao's MPO layers, in tnml
/// and in PyTorch on the same images (PyTorch's forms: the hand-written sweep, tltorch factorized
/// and reconstructed, dense).
fn epochs(threads: usize, py: Option<&Path>, dev: &Device) {
    let data = mnist();
    let tmp = std::env::temp_dir().join(format!("tnml-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (xi, yi) = (tmp.join("x.f32"), tmp.join("y.u8"));
    let bytes: Vec<u8> = data.images.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&xi, bytes).unwrap();
    std::fs::write(&yi, &data.labels).unwrap();
    let n = data.len().to_string();
    let file = |p: &Path| p.display().to_string();
    let torch_epoch = |script: &str, args: &[&str]| -> Option<f64> {
        let py = py?;
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../bench")
            .join(script);
        let mut all = vec![threads.to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let out = Command::new(py).arg(path).args(&all).output().ok()?;
        let line = out.stdout.split(|&b| b == b'\n').find(|l| !l.is_empty())?;
        serde_json::from_slice::<serde_json::Value>(line).ok()?["epoch_s"].as_f64()
    };
    println!(
        "\none epoch, {} MNIST images, batch 100, {threads} threads (seconds)",
        data.len()
    );
    let mut dense_fc2 = None;
    for (name, arch, bond) in [
        ("FC2-MPO D=16, Adam 1e-3", Arch::Fc2, Some(16)),
        ("FC2 dense, Adam 1e-3", Arch::Fc2, None),
        ("LeNet-5-MPO D=4, SGD 0.05 m 0.9", Arch::Lenet5, Some(4)),
        ("LeNet-5 dense, SGD 0.05 m 0.9", Arch::Lenet5, None),
    ] {
        let cfg = NetConfig {
            arch,
            mpo: bond.map(|d| arch.gao_preset(Some(d)).unwrap()),
            norm: NormKind::None,
            init: WeightInit::He,
            seed: 0,
            pairing: None,
        };
        let tc = match arch {
            Arch::Fc2 => TrainConfig::adam(1, 100, 1e-3, 0),
            _ => TrainConfig {
                optimizer: OptimizerKind::Sgd {
                    momentum: 0.9,
                    nesterov: false,
                },
                ..TrainConfig::adam(1, 100, 0.05, 0)
            },
        };
        let net = cfg.init(dev).unwrap();
        let t = Instant::now();
        let _ = train(net, tc.build_optimizer(), &tc, &data, None, 1, dev, &mut Silent).unwrap();
        let tnml = t.elapsed().as_secs_f64();
        let d = bond.unwrap_or(4).to_string();
        let forms: Vec<(&str, Option<f64>)> = match (arch, bond) {
            (Arch::Fc2, Some(_)) => ["sweep", "tltorch-factorized", "tltorch-reconstructed"]
                .into_iter()
                .map(|f| {
                    (
                        f,
                        torch_epoch("mpo_torch.py", &["epoch", &file(&xi), &file(&yi), &n, &d, f]),
                    )
                })
                .collect(),
            (Arch::Fc2, None) => {
                dense_fc2 = Some(tnml);
                vec![(
                    "nn.Linear",
                    torch_epoch(
                        "mpo_torch.py",
                        &["epoch", &file(&xi), &file(&yi), &n, &d, "dense"],
                    ),
                )]
            }
            (_, Some(_)) => vec![(
                "tltorch-factorized",
                torch_epoch("lenet_torch.py", &[&file(&xi), &file(&yi), &n, "mpo", &d]),
            )],
            (_, None) => vec![(
                "dense",
                torch_epoch("lenet_torch.py", &[&file(&xi), &file(&yi), &n, "dense"]),
            )],
        };
        let shown: Vec<String> = forms
            .iter()
            .map(|(f, t)| format!("{f} {}", t.map_or("-".into(), |t| format!("{t:.2}"))))
            .collect();
        let best = forms.iter().filter_map(|f| f.1).fold(f64::INFINITY, f64::min);
        println!(
            "{name:<34} tnml {tnml:6.2}   PyTorch: {}   fastest PyTorch / tnml {}",
            shown.join(", "),
            if best.is_finite() {
                format!("{:.2}x", best / tnml)
            } else {
                "-".into()
            }
        );
        if let (Arch::Fc2, Some(_), Some(dense)) = (arch, bond, dense_fc2) {
            println!("{:<34} tnml FC2-MPO / tnml dense FC2 {:.2}x", "", tnml / dense);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
