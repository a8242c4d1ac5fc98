//! Networks in and out: `net eval`'s confusion matrix and its heat map, `net predict` (CSV and
//! safetensors agreeing with eval), `net export --format torch` (PyTorch names and shapes), and
//! `net compress --from-torch` reading such a state_dict back with the same accuracy, with clear
//! errors for a wrong architecture, a file without one, and a state_dict of another model.

use std::collections::HashMap;
use std::path::Path;

use assert_cmd::Command;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn tnml() -> Command {
    Command::cargo_bin("tnml").unwrap()
}

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
    let e = failure(tnml().args(["net", "compress", "--max-bond", "8"]));
    assert!(e.contains("--from-torch"), "{e}");
}
