//! `tnml net compress --auto` keeps a layer dense where its MPO would not be smaller than the
//! matrix (issue 30, item 1): the layer stays the matrix (a one-site MPO, the dense layer's
//! parameters), is listed as kept dense, and the model still evaluates.

use predicates::prelude::*;
use predicates::str::contains;

use crate::common::tnml;

#[test]
fn net_compress_auto_keeps_dense_what_an_mpo_would_grow() {
    let tmp = tempfile::tempdir().unwrap();
    let dense = tmp.path().join("dense");
    let limits = ["--train-limit", "600", "--test-limit", "100"];
    tnml()
        .args(["net", "train", "--model", "fc2", "--epochs", "1", "--lr", "2e-3"])
        .args(limits)
        .arg("--out")
        .arg(&dense)
        .assert()
        .success();
    // fc2 (256 -> 10) over sites (16 in, 1 out), (16 in, 10 out): bond D costs 16 D + 160 D
    // parameters against 2,560 dense, so at D = 16 (its full rank) the MPO is larger (2,816)
    let modes = "28,28->16,16:16;16,16->1,10:16";
    let run = tmp.path().join("auto");
    tnml()
        .args(["net", "compress", "--auto", "--mpo", modes])
        .args([
            "--max-drop",
            "100",
            "--validation",
            "100",
            "--retrain-epochs",
            "0",
        ])
        .args(["--uniform-bonds", "2,16", "--checkpoint"])
        .arg(&dense)
        .args(limits)
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .stderr(contains("uniform D=16:").and(contains("(fc2 kept dense: no MPO smaller than the matrix)")));
    let path = std::fs::read_to_string(run.join("compression-path.jsonl")).unwrap();
    let points: Vec<serde_json::Value> = path.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let params = |label: &str| {
        points
            .iter()
            .find(|p| p["label"] == label)
            .and_then(|p| p["params"].as_u64())
            .unwrap()
    };
    // D = 16: fc1 as an MPO (28*16*16 * 2 = 14,336) and fc2 counted as its matrix (2,560)
    assert_eq!(params("D=16"), 14_336 + 2_560);
    // D = 2: fc1 28*16*2 * 2 = 1,792, fc2 16*2 + 2*160 = 352
    assert_eq!(params("D=2"), 1_792 + 352);
    // the chosen model evaluates; its bond choices say which layer (if any) was kept dense
    tnml()
        .args(["net", "eval", "--checkpoint"])
        .arg(&run)
        .args(["--test-limit", "50"])
        .assert()
        .success();
    let choices: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("bond-choices.json")).unwrap()).unwrap();
    assert!(
        choices.iter().all(|c| c["kept_dense"].is_boolean()),
        "{choices:?}"
    );
}
