//! Bonds chosen from the entanglement (issue 18): `tnml mpo compress --auto` on weights with
//! known ranks, `tnml net compress --auto` on a small FC2, and their errors.

use std::path::Path;

use predicates::prelude::*;
use predicates::str::contains;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tnml_core::Mpo;

use crate::common::tnml;

/// A 64 x 64 weight with exact ranks `bonds` under the default modes (4,4,2,2)x(4,4,2,2), a bias
/// and an integer buffer, as a safetensors file.
fn weights_with_known_ranks(path: &Path, bonds: &[usize]) {
    let modes = [4usize, 4, 2, 2];
    let mut state = 11u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    let cores = (0..4)
        .map(|k| {
            let l = if k == 0 { 1 } else { bonds[k - 1] };
            let r = if k == 3 { 1 } else { bonds[k] };
            (
                [l, modes[k], modes[k], r],
                (0..l * modes[k] * modes[k] * r).map(|_| next()).collect(),
            )
        })
        .collect();
    let w = Mpo::from_cores(cores).unwrap().to_dense().unwrap();
    let wb: Vec<u8> = (0..64)
        .flat_map(|i| (0..64).map(move |j| (i, j)))
        .flat_map(|(i, j)| w[(i, j)].to_le_bytes())
        .collect();
    let bias: Vec<u8> = [0.5f32; 64].iter().flat_map(|x| x.to_le_bytes()).collect();
    let steps = 7i64.to_le_bytes().to_vec();
    let bytes = safetensors::serialize(
        [
            (
                "layer.weight",
                TensorView::new(Dtype::F64, vec![64, 64], &wb).unwrap(),
            ),
            (
                "layer.bias",
                TensorView::new(Dtype::F32, vec![64], &bias).unwrap(),
            ),
            ("steps", TensorView::new(Dtype::I64, vec![1], &steps).unwrap()),
        ],
        None,
    )
    .unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A weight whose smallest MPO within the error is not smaller than the matrix is kept dense,
/// said so, counted, and left out of mpo.safetensors (never written larger than dense).
#[test]
fn mpo_compress_auto_keeps_dense_what_would_grow() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("w.safetensors");
    weights_with_known_ranks(&file, &[16, 64, 16]);
    let run = tmp.path().join("r");
    let out = tnml()
        .args(["mpo", "compress", "--auto", "--max-error", "0.001", "--input"])
        .arg(&file)
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .stderr(contains("not smaller than the matrix: kept dense"))
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("0 of 1 weights compressed; 1 kept dense"), "{text}");
    assert!(text.contains("layer.weight (kept dense)"), "{text}");
    let rec = &auto_json(&run)[0];
    assert_eq!(rec["kept_dense"], true);
    assert!(rec["auto"]["rho"].as_f64().unwrap() >= 1.0, "{rec}");
    assert!(!run.join("mpo.safetensors").exists());
}

/// A file of odd weights beside a good one: all zero (as at some initializations), scaled by
/// 1e200 and by 1e-200 (f64), one NaN.
fn odd_weights(path: &Path) {
    let f32s = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let f64s = |v: Vec<f64>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let base: Vec<f64> = (0..16 * 12)
        .map(|k| ((k * 37 % 101) as f64 / 50.0 - 1.0) * (1.0 + (k % 7) as f64))
        .collect();
    let good = f32s(base.iter().map(|&x| x as f32).collect());
    let zero = f32s(vec![0.0; 16 * 12]);
    let huge = f64s(base.iter().map(|x| x * 1e200).collect());
    let tiny = f64s(base.iter().map(|x| x * 1e-200).collect());
    let mut nan = base.clone();
    nan[5] = f64::NAN;
    let nan = f64s(nan);
    let bytes = safetensors::serialize(
        [
            (
                "a.weight",
                TensorView::new(Dtype::F32, vec![16, 12], &good).unwrap(),
            ),
            (
                "b.weight",
                TensorView::new(Dtype::F32, vec![16, 12], &zero).unwrap(),
            ),
            (
                "c.weight",
                TensorView::new(Dtype::F64, vec![16, 12], &huge).unwrap(),
            ),
            (
                "d.weight",
                TensorView::new(Dtype::F64, vec![16, 12], &tiny).unwrap(),
            ),
            (
                "e.weight",
                TensorView::new(Dtype::F64, vec![16, 12], &nan).unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Whole-file commands do not stop at one odd weight: they leave it out with its reason and
/// finish; scaled weights are analysed like the unscaled one.
#[test]
fn whole_file_commands_leave_out_odd_weights_and_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("odd.safetensors");
    odd_weights(&file);
    let out = tnml()
        .arg("entangle")
        .arg(&file)
        .arg("--json")
        .arg("--out")
        .arg(tmp.path().join("e"))
        .assert()
        .success()
        .get_output()
        .clone();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = j["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["layer"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.weight", "c.weight", "d.weight"]);
    let entropy = |k: usize| j["weights"][k]["bonds"][0]["entropy"].as_f64().unwrap();
    assert!((entropy(0) - entropy(1)).abs() < 1e-6 && (entropy(0) - entropy(2)).abs() < 1e-6);
    let skipped: Vec<String> = j["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let text = skipped.join(" ");
    assert!(
        text.contains("b.weight") && text.contains("every entry is zero"),
        "{text}"
    );
    assert!(text.contains("e.weight") && text.contains("NaN"), "{text}");
    let run = tmp.path().join("m");
    tnml()
        .args(["mpo", "compress", "--auto", "--max-error", "0.1", "--input"])
        .arg(&file)
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .stderr(contains("b.weight: left out (every entry is zero"));
    let layers: Vec<String> = auto_json(&run)
        .iter()
        .map(|r| r["layer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers, ["a.weight", "c.weight", "d.weight"]);
    // a file whose every bond is 1: the tables are written, the empty figure left out
    let rank1 = tmp.path().join("r.safetensors");
    let w: Vec<u8> = [1.0f32, 2.0, 2.0, 4.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(
        &rank1,
        safetensors::serialize(
            [("r.weight", TensorView::new(Dtype::F32, vec![2, 2], &w).unwrap())],
            None,
        )
        .unwrap(),
    )
    .unwrap();
    tnml()
        .arg("entangle")
        .arg(&rank1)
        .arg("--out")
        .arg(tmp.path().join("r"))
        .assert()
        .success()
        .stderr(contains("nothing to draw"));
    assert!(tmp.path().join("r/truncation.csv").is_file());
    // nothing usable at all: a clear error, no run
    let zeros = tmp.path().join("z.safetensors");
    let z: Vec<u8> = [0.0f32; 4].iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(
        &zeros,
        safetensors::serialize(
            [("z.weight", TensorView::new(Dtype::F32, vec![2, 2], &z).unwrap())],
            None,
        )
        .unwrap(),
    )
    .unwrap();
    tnml()
        .arg("entangle")
        .arg(&zeros)
        .arg("--out")
        .arg(tmp.path().join("z"))
        .assert()
        .failure()
        .stderr(contains("no weight can be analysed"));
    assert!(!tmp.path().join("z").exists());
}

fn auto_json(run: &Path) -> Vec<serde_json::Value> {
    serde_json::from_slice::<Vec<serde_json::Value>>(&std::fs::read(run.join("auto.json")).unwrap()).unwrap()
}

#[test]
fn mpo_compress_auto_finds_the_known_ranks_and_keeps_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("w.safetensors");
    weights_with_known_ranks(&file, &[3, 5, 2]);
    // zero error: the exact ranks, everything else left out with the reason
    let exact = tmp.path().join("exact");
    tnml()
        .args(["mpo", "compress", "--auto", "--max-error", "0", "--input"])
        .arg(&file)
        .arg("--out")
        .arg(&exact)
        .assert()
        .success()
        .stdout(contains("M^{4,4,2,2}_{4,4,2,2}(3,5,2)").and(contains("layer.bias (shape [64]")));
    let rec = &auto_json(&exact)[0];
    assert_eq!(rec["auto"]["bond_dims"], serde_json::json!([3, 5, 2]));
    assert!(rec["auto"]["error"].as_f64().unwrap() < 1e-10);
    for f in [
        "bond-choices.json",
        "mpo.safetensors",
        "summary.md",
        "plots/bonds-layer.weight.png",
    ] {
        assert!(exact.join(f).is_file(), "{f} missing");
    }
    // a nonzero error: within it, never more parameters than one bond dimension for all
    for e in ["0.05", "0.3"] {
        let run = tmp.path().join(format!("e{e}"));
        tnml()
            .args(["mpo", "compress", "--auto", "--max-error", e, "--input"])
            .arg(&file)
            .arg("--out")
            .arg(&run)
            .assert()
            .success();
        let rec = &auto_json(&run)[0];
        let e: f64 = e.parse().unwrap();
        assert!(rec["auto"]["error"].as_f64().unwrap() <= e);
        assert!(rec["uniform"]["error"].as_f64().unwrap() <= e);
        assert!(rec["auto"]["params"].as_u64().unwrap() <= rec["uniform"]["params"].as_u64().unwrap());
    }
}

#[test]
fn mpo_compress_auto_refuses_what_it_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("w.safetensors");
    weights_with_known_ranks(&file, &[2, 2, 2]);
    let run = |args: &[&str]| {
        let mut c = tnml();
        c.args(["mpo", "compress", "--input"])
            .arg(&file)
            .args(args)
            .arg("--out")
            .arg(tmp.path().join("x"));
        c.assert().failure()
    };
    run(&["--auto"]).stderr(contains("--auto needs --max-error"));
    run(&["--auto", "--max-error", "1.5"]).stderr(contains("--max-error 1.5"));
    run(&[
        "--auto",
        "--max-error",
        "0.1",
        "--in-modes",
        "8,8",
        "--out-modes",
        "8,8",
    ])
    .stderr(contains("name it with --tensor"));
    run(&["--auto", "--max-error", "0.1", "--tensor", "nope"]).stderr(contains("no weight \"nope\""));
    run(&["--auto", "--max-error", "0.1", "--max-bond", "4"]).stderr(contains("cannot be used with"));
    assert!(!tmp.path().join("x").exists(), "nothing is written on an error");
}

#[test]
fn net_compress_auto_searches_on_a_validation_split() {
    let tmp = tempfile::tempdir().unwrap();
    let dense = tmp.path().join("dense");
    let limits = ["--train-limit", "1200", "--test-limit", "200"];
    tnml()
        .args(["net", "train", "--model", "fc2", "--epochs", "1", "--lr", "2e-3"])
        .args(limits)
        .arg("--out")
        .arg(&dense)
        .assert()
        .success();
    let run = tmp.path().join("auto");
    tnml()
        .args([
            "net",
            "compress",
            "--auto",
            "--max-drop",
            "3",
            "--validation",
            "200",
            "--retrain-epochs",
            "1",
            "--uniform-bonds",
            "2,8",
            "--checkpoint",
        ])
        .arg(&dense)
        .args(limits)
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .stderr(
            contains("the exact MPO model retrained the same way")
                .and(contains("on 200 held-out training images")),
        )
        .stdout(
            contains("chosen per bond")
                .and(contains("| D=8 |"))
                .and(contains("exact MPO, retrained (the reference)")),
        );
    let path = std::fs::read_to_string(run.join("compression-path.jsonl")).unwrap();
    let points: Vec<serde_json::Value> = path.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        points.iter().any(|p| p["kind"] == "auto")
            && points.iter().filter(|p| p["kind"] == "uniform").count() == 2
    );
    // the chosen model is a checkpoint that evaluates
    tnml()
        .args(["net", "eval", "--checkpoint"])
        .arg(&run)
        .args(["--test-limit", "100"])
        .assert()
        .success();
    for f in [
        "bond-choices.json",
        "plots/compression-path.png",
        "plots/bonds-fc1.png",
        "model.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // a validation split of every training image is refused, nothing written
    let bad = tmp.path().join("bad");
    tnml()
        .args([
            "net",
            "compress",
            "--auto",
            "--validation",
            "1200",
            "--checkpoint",
        ])
        .arg(&dense)
        .args(limits)
        .arg("--out")
        .arg(&bad)
        .assert()
        .failure()
        .stderr(contains("--validation"));
    assert!(!bad.exists());
}

#[test]
fn net_compress_auto_starts_from_an_mpo_model_too() {
    let tmp = tempfile::tempdir().unwrap();
    let mpo = tmp.path().join("mpo");
    let limits = ["--train-limit", "600", "--test-limit", "100"];
    tnml()
        .args([
            "net", "train", "--model", "fc2", "--mpo", "gao", "--bond", "8", "--epochs", "1", "--lr", "2e-3",
        ])
        .args(limits)
        .arg("--out")
        .arg(&mpo)
        .assert()
        .success();
    let run = tmp.path().join("auto");
    tnml()
        .args([
            "net",
            "compress",
            "--auto",
            "--max-drop",
            "100",
            "--validation",
            "100",
            "--retrain-epochs",
            "0",
            "--checkpoint",
        ])
        .arg(&mpo)
        .args(limits)
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .stdout(contains("MPO model as loaded").and(contains("its MPO layers as they are")));
    // its bonds start at the trained ones (8) and only go down
    let choices: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("bond-choices.json")).unwrap()).unwrap();
    for c in &choices {
        for (d, x) in c["chosen"]
            .as_array()
            .unwrap()
            .iter()
            .zip(c["exact_bond_dims"].as_array().unwrap())
        {
            assert!(
                d.as_u64().unwrap() <= x.as_u64().unwrap() && x.as_u64().unwrap() <= 8,
                "{c}"
            );
        }
    }
    tnml()
        .args(["net", "compress", "--auto", "--mpo", "gao", "--checkpoint"])
        .arg(&mpo)
        .args(limits)
        .assert()
        .failure()
        .stderr(contains("already has MPO layers"));
}

/// One truncation convention: the uniform baseline `--auto` prints is what `mpo compress
/// --max-bond D` makes of the same weight (same bonds, same error).
#[test]
fn the_uniform_baseline_reproduces_through_max_bond() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("w.safetensors");
    weights_with_known_ranks(&file, &[3, 5, 2]);
    let auto = tmp.path().join("auto");
    tnml()
        .args(["mpo", "compress", "--auto", "--max-error", "0.3", "--input"])
        .arg(&file)
        .arg("--out")
        .arg(&auto)
        .assert()
        .success();
    let rec = &auto_json(&auto)[0];
    let d = rec["uniform_bond"].as_u64().unwrap().to_string();
    let baseline = rec["uniform"]["error"].as_f64().unwrap();
    let fixed = tmp.path().join("fixed");
    let out = tnml()
        .args([
            "mpo",
            "compress",
            "--tensor",
            "layer.weight",
            "--in-modes",
            "4,4,2,2",
            "--out-modes",
            "4,4,2,2",
        ])
        .args(["--max-bond", &d, "--input"])
        .arg(&file)
        .arg("--out")
        .arg(&fixed)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("relative Frobenius error"))
        .unwrap_or_else(|| panic!("no error line in {text}"));
    let error: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (error - baseline).abs() <= 1e-3 * baseline.max(1e-12),
        "--max-bond {d}: error {error} vs the baseline's {baseline}"
    );
    assert!(
        text.contains(&format!(
            "{:?}",
            rec["uniform"]["bond_dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect::<Vec<_>>()
        )),
        "{text}"
    );
}

/// A weight whose balanced split is lopsided (a prime factor swallows a dimension) is left out
/// with the size to pad it to; more sites give more bonds.
#[test]
fn lopsided_weights_are_left_out_and_sites_give_more_bonds() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("w.safetensors");
    let mut state = 5u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) as f32 - 0.5
    };
    let emb: Vec<u8> = (0..1009 * 8).flat_map(|_| next().to_le_bytes()).collect();
    let fc: Vec<u8> = (0..64 * 64).flat_map(|_| next().to_le_bytes()).collect();
    let bytes = safetensors::serialize(
        [
            (
                "emb.weight",
                TensorView::new(Dtype::F32, vec![1009, 8], &emb).unwrap(),
            ),
            (
                "fc.weight",
                TensorView::new(Dtype::F32, vec![64, 64], &fc).unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    std::fs::write(&file, bytes).unwrap();
    let run = tmp.path().join("auto");
    tnml()
        .args([
            "mpo",
            "compress",
            "--auto",
            "--max-error",
            "0.5",
            "--sites",
            "6",
            "--input",
        ])
        .arg(&file)
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .stderr(
            contains("emb.weight: left out (1009 rows = 1009 split into")
                .and(contains("pad the weight with zeros to")),
        );
    let recs = auto_json(&run);
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0]["exact_bond_dims"].as_array().unwrap().len(),
        5,
        "six sites: {}",
        recs[0]
    );
    tnml()
        .arg("entangle")
        .arg(&file)
        .args(["--sites", "9"])
        .assert()
        .failure()
        .stderr(contains("--sites"));
    tnml()
        .args([
            "mpo",
            "compress",
            "--sites",
            "6",
            "--in-modes",
            "8,8",
            "--out-modes",
            "8,8",
        ])
        .assert()
        .failure()
        .stderr(contains("--auto"));
}
