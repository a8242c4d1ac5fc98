//! Networks in and out: `net eval`'s confusion matrix and its heat map, `net predict` (CSV and
//! safetensors agreeing with eval), `net export --format torch` (PyTorch names and shapes), and
//! `net compress --from-torch` reading such a state_dict back with the same accuracy, with clear
//! errors for a wrong architecture, a file without one, and a state_dict of another model.

use std::collections::HashMap;
use std::path::Path;

use assert_cmd::Command;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::common::tnml;

fn stdout(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn failure(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(!o.status.success());
    String::from_utf8(o.stderr).unwrap()
}

/// "test accuracy 81.00%" -> 81.00
fn accuracy_in(text: &str, after: &str) -> f64 {
    let start = text
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} in {text}"))
        + after.len();
    text[start..].split('%').next().unwrap().trim().parse().unwrap()
}

/// The file's tensors with their metadata dropped (as a PyTorch user's own save would have none).
fn without_metadata(bytes: &[u8]) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let views: Vec<(String, TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                TensorView::new(v.dtype(), v.shape().to_vec(), v.data()).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()
}

#[test]
fn eval_predict_export_and_import_a_network() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("fc2");
    tnml()
        .args(["net", "train", "--model", "fc2", "--epochs", "1", "--lr", "2e-3"])
        .args(["--train-limit", "1000", "--test-limit", "200", "--out"])
        .arg(&run)
        .assert()
        .success();
    let limits = ["--test-limit", "200"];
    let eval = stdout(
        tnml()
            .args(["net", "eval", "--checkpoint"])
            .arg(&run)
            .args(limits),
    );
    let acc = accuracy_in(&eval, "test accuracy ");
    assert!(eval.contains("confusion matrix (test split"), "{eval}");
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("confusion-test.json")).unwrap()).unwrap();
    let counts: Vec<Vec<u64>> = serde_json::from_value(c["counts"].clone()).unwrap();
    let right: u64 = (0..10).map(|k| counts[k][k]).sum();
    assert_eq!(counts.iter().flatten().sum::<u64>(), 200);
    assert!(
        (100.0 * right as f64 / 200.0 - acc).abs() < 1e-9,
        "{right} vs {acc}"
    );
    tnml().arg("plot").arg(&run).assert().success();
    assert!(run.join("plots/confusion-test.png").is_file());

    // predictions: CSV rows and safetensors agree with each other and with eval
    let (csv, st) = (tmp.path().join("p.csv"), tmp.path().join("p.safetensors"));
    for out in [&csv, &st] {
        tnml()
            .args(["net", "predict", "--limit", "200", "--checkpoint"])
            .arg(&run)
            .arg("--out")
            .arg(out)
            .assert()
            .success();
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!((rows.len(), rows[0].len()), (200, 23));
    let mut correct = 0;
    for r in &rows {
        let z = &r[3..13];
        let best = (0..10).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap();
        assert_eq!(r[2], best as f64);
        assert!(
            (r[13..].iter().sum::<f64>() - 1.0).abs() < 1e-5,
            "probabilities {r:?}"
        );
        correct += usize::from(r[1] == r[2]);
    }
    assert!((100.0 * correct as f64 / 200.0 - acc).abs() < 1e-9);
    let bytes = std::fs::read(&st).unwrap();
    let t = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(t.tensor("logits").unwrap().shape(), [200, 10]);
    assert_eq!(t.tensor("probabilities").unwrap().dtype(), Dtype::F32);
    assert_eq!(t.tensor("predicted").unwrap().dtype(), Dtype::I64);

    // export: PyTorch names and shapes, the same tensors as the run's model.safetensors
    let exported = tmp.path().join("fc2-torch.safetensors");
    let said = stdout(
        tnml()
            .args(["net", "export", "--format", "torch", "--checkpoint"])
            .arg(&run)
            .arg("--out")
            .arg(&exported),
    );
    assert!(said.contains("fc1.weight [256, 784]"), "{said}");
    let bytes = std::fs::read(&exported).unwrap();
    let e = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = e.names();
    names.sort();
    assert_eq!(names, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    let model_bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let m = SafeTensors::deserialize(&model_bytes).unwrap();
    for n in names {
        assert_eq!(e.tensor(n).unwrap().data(), m.tensor(n).unwrap().data(), "{n}");
    }

    // import: the same model, so the same accuracy before compression
    let outs = std::cell::Cell::new(0);
    let compress = |file: &Path, extra: &[&str]| {
        outs.set(outs.get() + 1);
        let mut cmd = tnml();
        cmd.args(["net", "compress", "--max-bond", "8", "--from-torch"])
            .arg(file)
            .args(extra)
            .args(limits)
            .arg("--out")
            .arg(tmp.path().join(format!("c{}", outs.get())));
        cmd
    };
    let o = compress(&exported, &[]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        (accuracy_in(&err, "dense model: test accuracy ") - acc).abs() < 1e-9,
        "{err} vs {acc}"
    );
    assert!(err.contains("after TT-SVD"), "{err}");
    // --max-bond full: no cap, the exact MPO, the dense model's accuracy; 0 is refused
    let o = tnml()
        .args(["net", "compress", "--max-bond", "full", "--from-torch"])
        .arg(&exported)
        .args(limits)
        .arg("--out")
        .arg(tmp.path().join("cfull"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // (exact up to f32 rounding: at most one of the 200 images may flip)
    assert!(
        (accuracy_in(&err, "after TT-SVD: test accuracy ") - acc).abs() <= 0.51,
        "{err} vs {acc}"
    );
    let o = tnml()
        .args(["net", "compress", "--max-bond", "0", "--from-torch"])
        .arg(&exported)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("a bond dimension of 0 keeps nothing"));
    let e = failure(&mut compress(&exported, &["--model", "lenet5"]));
    assert!(e.contains("holds a Fc2"), "{e}");
    let bare = tmp.path().join("bare.safetensors");
    std::fs::write(&bare, without_metadata(&bytes)).unwrap();
    let e = failure(&mut compress(&bare, &[]));
    assert!(e.contains("--model fc2 or --model lenet5"), "{e}");
    let o = compress(&bare, &["--model", "fc2"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = failure(&mut compress(&bare, &["--model", "lenet5"]));
    assert!(
        e.contains("missing tensor conv1.weight") && e.contains("unexpected tensors"),
        "{e}"
    );
    let e = failure(
        tnml()
            .args(["net", "predict", "--test-limit", "0", "--checkpoint"])
            .arg(&run)
            .arg("--out")
            .arg(tmp.path().join("none.csv")),
    );
    assert!(e.contains("--test-limit 0"), "{e}");
    assert!(!tmp.path().join("none.csv").exists());
    let e = failure(tnml().args(["net", "compress", "--max-bond", "8"]));
    assert!(e.contains("--from-torch"), "{e}");
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn whole_model_entanglement_of_a_pytorch_state_dict() {
    let tmp = tempfile::tempdir().unwrap();
    let file = fixture("torch_small.safetensors"); // written by make_torch_small.py (PyTorch)
    let out = tmp.path().join("e");
    let json = stdout(
        tnml()
            .arg("entangle")
            .arg(&file)
            .args(["--json", "--modes", "5.weight=4,4,8->2,4,4", "--out"])
            .arg(&out),
    );
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    let weights = j["weights"].as_array().unwrap();
    let names: Vec<&str> = weights.iter().map(|w| w["layer"].as_str().unwrap()).collect();
    assert_eq!(names, ["0.weight", "5.weight", "7.weight"]);
    // the convolution (8, 1, 3, 3) is read as 8 x 9, balanced modes chosen for it
    assert_eq!(
        (weights[0]["rows"].as_u64(), weights[0]["cols"].as_u64()),
        (Some(8), Some(9))
    );
    assert_eq!(weights[0]["auto_modes"], true);
    assert_eq!(weights[1]["in_modes"], serde_json::json!([4, 4, 8]));
    assert_eq!(weights[1]["auto_modes"], false);
    for w in weights {
        let bonds = w["bonds"].as_array().unwrap();
        assert_eq!(bonds.len(), w["in_modes"].as_array().unwrap().len() - 1);
        for b in bonds {
            let (s, bound) = (b["entropy"].as_f64().unwrap(), b["bound"].as_f64().unwrap());
            assert!(s > 0.0 && s <= bound + 1e-9, "{b}");
        }
    }
    let skipped: Vec<&str> = j["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        skipped.contains(&"1.num_batches_tracked") && skipped.contains(&"7.bias"),
        "{skipped:?}"
    );
    for f in [
        "weights.json",
        "entanglement.json",
        "truncation.csv",
        "plots/entropy-0.weight.png",
        "plots/spectra-7.weight.svg",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }

    let fails = |extra: &[&str]| {
        failure(
            tnml()
                .arg("entangle")
                .arg(&file)
                .args(extra)
                .arg("--out")
                .arg(tmp.path().join("x")),
        )
    };
    let e = fails(&["--modes", "fc9.weight=2->2"]);
    assert!(
        e.contains("no weight \"fc9.weight\"") && e.contains("5.weight"),
        "{e}"
    );
    let e = fails(&["--modes", "5.weight=4,4,4->2,4,4"]);
    assert!(e.contains("5.weight") && e.contains("32 x 128"), "{e}");
    let e = fails(&["--modes", "5.weight:4->4"]);
    assert!(e.contains("NAME=IN->OUT"), "{e}");
    let e = fails(&["--in-modes", "4,32", "--out-modes", "32"]);
    assert!(e.contains("name it with --tensor"), "{e}");
    // options a weights file does not use are refused, not ignored
    for (opt, val) in [
        ("--accuracy", None),
        ("--test-limit", Some("10")),
        ("--dataset", Some("mnist")),
    ] {
        let mut args = vec![opt];
        args.extend(val);
        let e = fails(&args);
        assert!(
            e.contains(&format!("{opt} applies to a tnml run directory")),
            "{e}"
        );
    }
    let e = fails(&[
        "--modes",
        "5.weight=4,4,8->2,4,4",
        "--modes",
        "5.weight=2,4,4,4->4,4,2",
    ]);
    assert!(e.contains("--modes names 5.weight twice"), "{e}");
    assert!(!tmp.path().join("x").exists(), "a failed run leaves no directory");
    // one tensor with its own modes still works as before
    let one = stdout(
        tnml()
            .arg("entangle")
            .arg(&file)
            .args([
                "--tensor",
                "7.weight",
                "--in-modes",
                "4,8",
                "--out-modes",
                "2,5",
                "--out",
            ])
            .arg(tmp.path().join("one")),
    );
    assert!(
        one.contains("| 7.weight | (10,32) | 10 x 32 | 4,8 -> 2,5 |"),
        "{one}"
    );
    assert!(!one.contains("5.weight"), "{one}");
}

#[test]
fn hostile_tensor_names_stay_inside_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let w: Vec<u8> = (0..64)
        .flat_map(|i| ((i % 7) as f32 + 0.5).to_le_bytes())
        .collect();
    let bytes = safetensors::serialize(
        [(
            "../../escape",
            TensorView::new(Dtype::F32, vec![8, 8], &w).unwrap(),
        )],
        None::<HashMap<String, String>>,
    )
    .unwrap();
    let file = tmp.path().join("evil.safetensors");
    std::fs::write(&file, bytes).unwrap();
    let run = tmp.path().join("sub/run");
    tnml()
        .arg("entangle")
        .arg(&file)
        .arg("--out")
        .arg(&run)
        .assert()
        .success();
    assert!(run.join("plots/entropy-_._.._escape.png").is_file());
    assert!(!tmp.path().join("escape.png").exists());
}

/// Weights near f32's range (entries up to 3e38) compress into a whole run: the TT-SVD's norm,
/// which would overflow one f32 core, is spread over the cores (issue 30, item 14).
#[test]
fn weights_near_the_f32_range_compress_into_a_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("fc2");
    tnml()
        .args(["net", "train", "--model", "fc2", "--epochs", "1"])
        .args(["--train-limit", "200", "--test-limit", "100", "--out"])
        .arg(&run)
        .assert()
        .success();
    let exported = tmp.path().join("fc2.safetensors");
    tnml()
        .args(["net", "export", "--checkpoint"])
        .arg(&run)
        .arg("--out")
        .arg(&exported)
        .assert()
        .success();
    let bytes = std::fs::read(&exported).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, v) in st.tensors() {
        let mut data = v.data().to_vec();
        if name == "fc1.weight" {
            let vals: Vec<f32> = data
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let peak = vals.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            data = vals
                .iter()
                .flat_map(|x| (x / peak * 3e38).to_le_bytes())
                .collect();
        }
        owned.push((name, v.shape().to_vec(), data));
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    let huge = tmp.path().join("huge.safetensors");
    std::fs::write(
        &huge,
        safetensors::serialize(views, None::<HashMap<String, String>>).unwrap(),
    )
    .unwrap();
    let out = tmp.path().join("compressed");
    tnml()
        .args([
            "net",
            "compress",
            "--model",
            "fc2",
            "--test-limit",
            "100",
            "--from-torch",
        ])
        .arg(&huge)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    for f in ["model.safetensors", "summary.md", "checkpoint"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let model = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&model).unwrap();
    for (name, v) in st.tensors() {
        let finite = v
            .data()
            .chunks(4)
            .all(|c| f32::from_le_bytes(c.try_into().unwrap()).is_finite());
        assert!(finite, "{name} has a non-finite entry");
    }
}

/// The documented BatchNorm layout round-trips: `net export` of `lenet5 --norm batch`, read back
/// by `net compress --from-torch` with its metadata (the file's config) and without it (the norm
/// read off the tensor names), at full rank the same accuracy (issue 30, item 15).
#[test]
fn a_batchnorm_model_round_trips_through_the_torch_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("lenet");
    tnml()
        .args([
            "net", "train", "--model", "lenet5", "--norm", "batch", "--epochs", "1",
        ])
        .args(["--train-limit", "300", "--test-limit", "200", "--out"])
        .arg(&run)
        .assert()
        .success();
    let exported = tmp.path().join("lenet.safetensors");
    tnml()
        .args(["net", "export", "--checkpoint"])
        .arg(&run)
        .arg("--out")
        .arg(&exported)
        .assert()
        .success();
    let bare = tmp.path().join("bare.safetensors");
    std::fs::write(&bare, without_metadata(&std::fs::read(&exported).unwrap())).unwrap();
    for (file, tag) in [(&exported, "meta"), (&bare, "bare")] {
        let out = tmp.path().join(tag);
        let text = success_stderr(
            tnml()
                .args([
                    "net",
                    "compress",
                    "--model",
                    "lenet5",
                    "--max-bond",
                    "full",
                    "--test-limit",
                    "200",
                ])
                .arg("--from-torch")
                .arg(file)
                .arg("--out")
                .arg(&out),
        );
        let dense = accuracy_in(&text, "dense model: test accuracy");
        let after = accuracy_in(&text, "after TT-SVD: test accuracy");
        assert!((dense - after).abs() < 1.0, "{tag}: {dense} vs {after}\n{text}");
        assert!(out.join("model.safetensors").is_file(), "{tag}");
    }
}

/// stderr of a command that must succeed.
fn success_stderr(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{err}");
    err
}
