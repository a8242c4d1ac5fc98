//! `tnml mps predict` writes per-image predictions that agree with the model's rule and with
//! `tnml mps eval`.

use safetensors::{Dtype, SafeTensors};

use crate::common::tnml;

#[test]
fn predictions_out_as_csv_and_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    tnml()
        .args([
            "mps",
            "train",
            "--max-bond",
            "3",
            "--sweeps",
            "1",
            "--train-limit",
            "200",
        ])
        .args(["--test-limit", "50", "--out"])
        .arg(&run)
        .assert()
        .success();
    let model = run.join("model.safetensors");
    let (csv, st) = (tmp.path().join("p.csv"), tmp.path().join("p.safetensors"));
    for out in [&csv, &st] {
        tnml()
            .args(["mps", "predict", "--test-limit", "120", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(out)
            .assert()
            .success();
    }
    // a file name of 250 bytes (the file system allows 255): the temporary name stays short
    let long = tmp.path().join(format!("{}.csv", "p".repeat(246)));
    tnml()
        .args(["mps", "predict", "--test-limit", "20", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&long)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&long).unwrap().lines().count(), 21);
    // CSV: a header and one row per image; `predicted` is argmax |f| (a quadratic-cost model)
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["index", "label", "predicted"]);
    assert_eq!(header.len(), 3 + 10 + 1);
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 120);
    let mut wrong = 0;
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], i as f64);
        let f = &r[3..13];
        let best = (0..10)
            .max_by(|&a, &b| f[a].abs().total_cmp(&f[b].abs()))
            .unwrap();
        assert_eq!(r[2], best as f64, "row {i}: {r:?}");
        wrong += usize::from(r[1] != r[2]);
    }
    // an existing --out is kept unless --force; a run's model never
    let again = |out: &std::path::Path, force: bool| {
        let mut cmd = tnml();
        cmd.args(["mps", "predict", "--test-limit", "10", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(out);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let before = std::fs::read(&csv).unwrap();
    let o = again(&csv, false);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exists: give --force to replace it"));
    assert_eq!(
        std::fs::read(&csv).unwrap(),
        before,
        "a refused predict changed the file"
    );
    let model_bytes = std::fs::read(&model).unwrap();
    let o = again(&run.join("model.safetensors"), true);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("tnml never replaces a run's model or records"), "{e}");
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    assert!(again(&csv, true).status.success());
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 11);
    std::fs::write(&csv, &before).unwrap();
    // the same error as mps eval
    let eval = tnml()
        .args(["mps", "eval", "--test-limit", "120", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    let eval = String::from_utf8(eval.stdout).unwrap();
    assert!(
        eval.contains(&format!("error {:.4}", wrong as f64 / 120.0)),
        "{eval} vs {wrong}"
    );
    // eval's confusion matrix, next to the model: rows sum to the images, off-diagonal to `wrong`
    assert!(eval.contains("confusion matrix (test split"), "{eval}");
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("confusion-test.json")).unwrap()).unwrap();
    let counts: Vec<Vec<u64>> = serde_json::from_value(c["counts"].clone()).unwrap();
    let total: u64 = counts.iter().flatten().sum();
    let right: u64 = (0..10).map(|k| counts[k][k]).sum();
    assert_eq!((total, total - right), (120, wrong as u64));
    for (k, row) in counts.iter().enumerate() {
        let n = rows.iter().filter(|r| r[1] == k as f64).count() as u64;
        assert_eq!(row.iter().sum::<u64>(), n, "class {k}");
    }
    assert!(run.join("confusion-test.csv").is_file());
    // safetensors: the same predictions and labels, scores in both forms
    let bytes = std::fs::read(&st).unwrap();
    let t = SafeTensors::deserialize(&bytes).unwrap();
    let ints = |name: &str| -> Vec<f64> {
        let v = t.tensor(name).unwrap();
        assert_eq!((v.dtype(), v.shape()), (Dtype::I64, &[120][..]));
        v.data()
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    };
    let (label, predicted) = (ints("label"), ints("predicted"));
    assert_eq!(label, rows.iter().map(|r| r[1]).collect::<Vec<_>>());
    assert_eq!(predicted, rows.iter().map(|r| r[2]).collect::<Vec<_>>());
    assert_eq!(t.tensor("scores").unwrap().shape(), [120, 10]);
    assert_eq!(t.tensor("scores_normalized").unwrap().dtype(), Dtype::F32);
    assert_eq!(t.tensor("log_scale").unwrap().shape(), [120]);
}

#[test]
fn predict_refuses_an_unknown_format_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("p.json");
    let o = tnml()
        .args(["mps", "predict", "--model", "nowhere.safetensors", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("give a .csv or a .safetensors file"),
        "{stderr}"
    );
    assert!(!out.exists());
    let o = tnml()
        .args(["mps", "predict", "--model", "nowhere.safetensors", "--out"])
        .arg(tmp.path().join("p.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!tmp.path().join("p.csv").exists());
}
