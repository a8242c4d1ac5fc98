//! Runs the `tnml` binary as a user would.

use assert_cmd::Command;
use predicates::prelude::*;

use crate::common::tnml;

/// Runs `cmd`, asserts that it succeeds, returns its stdout.
fn stdout_ok(cmd: &mut Command) -> String {
    output_ok(cmd).0
}

/// Runs `cmd`, asserts that it succeeds, returns its stdout and stderr.
fn output_ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.assert().success().get_output().clone();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn help_and_version_describe_the_tool() {
    let out = tnml()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("mpo") && text.contains("Tensor-network"), "{text}");
    let out = tnml()
        .args(["mpo", "compress", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("--in-modes") && text.contains("--cutoff"), "{text}");
    let out = tnml()
        .arg("--version")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8(out).unwrap().starts_with("tnml 0."));
}

#[test]
fn compress_writes_a_complete_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let assert = tnml()
        .args([
            "mpo",
            "compress",
            "--matrix",
            "identity",
            "--in-modes",
            "2,3,4",
            "--out-modes",
            "2,3,4",
            "--max-bond",
            "5",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    // the identity is a product operator: bond dimension 1, no entanglement, nothing dropped
    assert!(stdout.contains("bond dims: [1, 1]"), "{stdout}");
    assert!(
        stdout.contains("bond 1: requested 5 exceeds the rank cap, used 4"),
        "{stdout}"
    );
    for f in [
        "config.json",
        "metrics.jsonl",
        "entanglement.csv",
        "mpo.safetensors",
        "summary.md",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(first["bond_dim"], 1);
    assert!(first["entropy_exact"].as_f64().unwrap().abs() < 1e-12);

    // the written MPO reads back as tensors with the right shapes, named as an MPO layer's
    let bytes = std::fs::read(out.join("mpo.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("identity.cores.1").unwrap().shape(), &[1, 3, 3, 1]);

    // entangle reads the MPO file as MPOs (not its cores as weights), with their own modes
    let ent = tmp.path().join("ent");
    let text = stdout_ok(
        tnml()
            .arg("entangle")
            .arg(out.join("mpo.safetensors"))
            .arg("--out")
            .arg(&ent),
    );
    assert!(text.contains("| identity | 2,3,4 -> 2,3,4 | 1,1 |"), "{text}");
    tnml()
        .arg("entangle")
        .arg(out.join("mpo.safetensors"))
        .args(["--modes", "identity=4->4"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "is an MPO file, whose MPOs have their own modes",
        ));

    // a second run into the same directory is refused, nothing is overwritten
    tnml()
        .args(["mpo", "compress", "--in-modes", "2", "--out-modes", "2"])
        .arg("--out")
        .arg(&out)
        .assert()
        .failure()
        .stderr(predicates::str::contains("not empty"));
}

#[test]
fn bad_input_gives_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--in-modes", "4,4", "--out-modes", "4,4", "--max-bond", "0"],
            "max_bond is 0",
        ),
        (
            &["--in-modes", "4,4", "--out-modes", "4,4", "--cutoff", "1.5"],
            "cutoff is 1.5",
        ),
        (&["--in-modes", "4,0", "--out-modes", "4,4"], "in_modes[1] is 0"),
        (
            &["--in-modes", "4,4", "--out-modes", "4,4,4"],
            "in_modes has 2 entries but out_modes has 3",
        ),
        (
            &["--in-modes", "4,4", "--out-modes", "2,4", "--matrix", "identity"],
            "the identity needs a square matrix",
        ),
    ];
    for (args, msg) in cases {
        tnml()
            .args(["mpo", "compress"])
            .args(*args)
            .arg("--out")
            .arg(tempfile::tempdir().unwrap().path().join("r"))
            .assert()
            .failure()
            .stderr(predicates::str::contains(*msg));
    }
}

#[test]
fn compress_reads_a_pytorch_style_safetensors_weight() {
    let tmp = tempfile::tempdir().unwrap();
    // a 6x4 weight (out=6, in=4), W = u v^T with u = (1,2) x (1,2,3) and v = (1,-1) x (0.5,2):
    // a Kronecker product of per-site factors, i.e. a product MPO
    let u = [1.0f32, 2.0, 3.0, 2.0, 4.0, 6.0];
    let v = [0.5f32, 2.0, -0.5, -2.0];
    let data: Vec<u8> = u
        .iter()
        .flat_map(|a| v.iter().map(move |b| a * b))
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![6, 4], &data).unwrap();
    let path = tmp.path().join("layer.safetensors");
    std::fs::write(
        &path,
        safetensors::serialize([("fc.weight", view)], None).unwrap(),
    )
    .unwrap();
    let assert = tnml()
        .args([
            "mpo",
            "compress",
            "--tensor",
            "fc.weight",
            "--in-modes",
            "2,2",
            "--out-modes",
            "2,3",
        ])
        .arg("--input")
        .arg(&path)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("bond dims: [1]"),
        "a rank-1 outer product of per-site factors is a product MPO: {stdout}"
    );
    // modes that do not fit the stored matrix are refused with the numbers
    tnml()
        .args(["mpo", "compress", "--in-modes", "2,3", "--out-modes", "2,3"])
        .arg("--input")
        .arg(&path)
        .arg("--out")
        .arg(tmp.path().join("run2"))
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "in_modes multiply to 6, matrix has 4 columns",
        ));
}

#[test]
fn data_info_and_show_work_on_the_shipped_sample() {
    let out = tnml()
        .args(["data", "info"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("train: 6000 images of 1x28x28"), "{text}");
    assert!(text.contains("test: 1000 images of 1x28x28"), "{text}");
    assert!(text.contains("  1 1               671"), "{text}");
    assert_eq!(text.matches("matches the recorded SHA-256").count(), 4, "{text}");

    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("grid.png");
    tnml()
        .args(["data", "show", "--split", "test", "--count", "10", "--cols", "5"])
        .arg("--out")
        .arg(&png)
        .assert()
        .success();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    tnml()
        .args(["data", "show", "--start", "5000", "--split", "test"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "--start 5000 is past the end: the test split has 1000 images",
        ));
}

#[test]
fn data_commands_explain_missing_data() {
    let tmp = tempfile::tempdir().unwrap();
    tnml()
        .args(["data", "info", "--dataset", "fashion-mnist", "--data-dir"])
        .arg(tmp.path())
        .assert()
        .failure()
        .stderr(
            predicates::str::contains("Fashion-MNIST not found in").and(predicates::str::contains(
                "tnml data fetch --dataset fashion-mnist",
            )),
        );
    tnml()
        .args(["data", "fetch", "--dataset", "mnist-sample"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("ships with the repository"));
}

#[test]
fn mps_train_eval_project_on_the_shipped_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("mps");
    let out = tnml()
        .args([
            "mps",
            "train",
            "--max-bond",
            "4",
            "--sweeps",
            "1",
            "--train-limit",
            "300",
            "--test-limit",
            "100",
            "--threads",
            "2",
            "--final-refit",
            "softmax",
        ])
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("sweep 1: train error"), "{stderr}");
    assert!(stdout.contains("| 1 | 4 | 4 |"), "{stdout}");
    for f in [
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "model-refit.safetensors",
        "summary.md",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    // the final refit chose its penalty on held-out training images and predicts by argmax f
    assert!(
        stdout.contains("## Core refit at bond 98")
            && stdout.contains("validation error")
            && stdout.contains("after softmax refit")
            && stdout.contains("argmax f:"),
        "{stdout}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(rec["test_error"].as_f64().unwrap() < 0.6, "{rec}");

    let model = run.join("model.safetensors");
    let out = tnml()
        .args(["mps", "eval", "--test-limit", "100"])
        .arg("--model")
        .arg(&model)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("100 images, error") && text.contains("(argmax |f|,"),
        "{text}"
    );
    // the error eval reports is the one training recorded
    let err: f64 = text
        .split("error ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (err - rec["test_error"].as_f64().unwrap()).abs() < 1e-9,
        "{err} vs {rec}"
    );

    tnml()
        .args(["mps", "eval", "--image-size", "28"])
        .arg("--model")
        .arg(&model)
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "the model was trained on 14x14 images, the data gives 28x28",
        ));

    let proj = tmp.path().join("proj");
    let out = tnml()
        .args([
            "mps",
            "project",
            "--at-bond",
            "98",
            "--refit-lambda",
            "1e-6",
            "--train-limit",
            "300",
            "--test-limit",
            "100",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&proj)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("after ridge refit"), "{text}");
    assert!(proj.join("core.safetensors").is_file() && proj.join("model-refit.safetensors").is_file());

    let soft = tmp.path().join("soft");
    let text = stdout_ok(
        tnml()
            .args(["mps", "project", "--refit", "softmax"])
            .args(["--train-limit", "300", "--test-limit", "100"])
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&soft),
    );
    assert!(
        text.contains("after softmax refit") && text.contains("argmax f:"),
        "{text}"
    );
    // the refitted model file carries its decision rule: eval agrees with the projection's error
    let refit_test: f64 = text
        .lines()
        .find(|l| l.contains("after softmax refit"))
        .and_then(|l| l.split("test error ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap();
    let text = stdout_ok(
        tnml()
            .args(["mps", "eval", "--test-limit", "100"])
            .arg("--model")
            .arg(soft.join("model-refit.safetensors")),
    );
    assert!(
        text.contains(&format!("error {refit_test:.4} (argmax f,")),
        "{refit_test} vs {text}"
    );
}

#[test]
fn mps_bad_options_are_refused() {
    tnml()
        .args(["mps", "train", "--max-bond", "0", "--train-limit", "50"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("bond dimension 0"));
    for flag in ["--cg-passes", "--refit-passes"] {
        tnml()
            .args(["mps", "train", flag, "100000000", "--train-limit", "50"])
            .assert()
            .failure()
            .stderr(predicates::str::contains("100000000").and(predicates::str::contains("at most 1000")));
    }
    tnml()
        .args(["mps", "train", "--image-size", "10", "--train-limit", "50"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "--image-size 10 does not fit 28x28 images",
        ));
    tnml()
        .args(["mps", "train", "--validation", "50", "--train-limit", "50"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "--validation 50 must be between 1 and 49",
        ));
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    tnml()
        .args(["mps", "eval"])
        .arg("--model")
        .arg(&junk)
        .assert()
        .failure()
        .stderr(predicates::str::contains("not a valid safetensors file"));
}

#[test]
fn mps_cross_entropy_sweep_reports_a_validation_error() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("ce");
    let (stdout, stderr) = output_ok(
        tnml()
            .args(["mps", "train", "--max-bond", "3", "--sweeps", "1"])
            .args(["--loss", "cross-entropy", "--lambda", "0.3"])
            .args(["--train-limit", "250", "--validation", "50", "--test-limit", "50"])
            .arg("--out")
            .arg(&run),
    );
    assert!(stderr.contains("validation error"), "{stderr}");
    assert!(
        stdout.contains("200 train") && stdout.contains("predicts argmax f"),
        "{stdout}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    let v = rec["validation_error"].as_f64().unwrap();
    assert!((0.0..0.9).contains(&v), "{rec}");
}

#[test]
fn mps_gradient_trainer_runs_and_its_model_predicts_by_signed_argmax() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("grad");
    let (_, stderr) = output_ok(
        tnml()
            .args(["mps", "train", "--trainer", "gradient", "--feature-map", "linear"])
            .args([
                "--max-bond",
                "4",
                "--epochs",
                "1",
                "--train-limit",
                "240",
                "--validation",
                "40",
                "--lr-schedule",
                "cosine",
                "--shift",
                "1",
                "--test-limit",
                "50",
            ])
            .arg("--out")
            .arg(&run),
    );
    assert!(stderr.contains("epoch 1: loss"), "{stderr}");
    // the held-out images are scored every epoch, not trained on
    assert!(
        stderr.contains("200 train / 40 validation / 50 test images"),
        "{stderr}"
    );
    assert!(stderr.contains("validation error"), "{stderr}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(
        (0.0..=1.0).contains(&rec["validation_error"].as_f64().unwrap()),
        "{rec}"
    );
    // its error curves are drawn per epoch, train, validation and test
    tnml().arg("plot").arg(&run).assert().success();
    let svg = std::fs::read_to_string(run.join("plots/error.svg")).unwrap();
    assert!(
        svg.contains("error per epoch") && svg.contains("validation"),
        "{svg}"
    );
    let text = stdout_ok(
        tnml()
            .args(["mps", "eval", "--test-limit", "50"])
            .arg("--model")
            .arg(run.join("model.safetensors")),
    );
    // cross-entropy (the gradient trainer's default loss) makes the scores logits
    assert!(
        text.contains("50 images, error") && text.contains("(argmax f,"),
        "{text}"
    );
}

/// `--device cuda` on a machine without a GPU (CI, the development machines) stops with a
/// clear message and writes no run: without the `cuda` feature it names the feature, with it
/// the missing driver. Never a panic, never a silent CPU run.
#[test]
fn mps_gradient_on_cuda_without_a_gpu_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let res = tnml()
        .args(["mps", "train", "--trainer", "gradient", "--feature-map", "linear"])
        .args([
            "--max-bond",
            "4",
            "--epochs",
            "1",
            "--train-limit",
            "100",
            "--test-limit",
            "20",
        ])
        .args(["--device", "cuda:0"])
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    let stderr = String::from_utf8(res.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("device cuda:0: this tnml was built without CUDA support")
            || stderr.contains("no CUDA driver found")
            || stderr.contains("no CUDA device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "a refused run left {}", out.display());
}

/// Options are applied or refused before any work: nothing is written for a refused command.
#[test]
fn mps_train_refuses_what_it_would_ignore_or_misreport() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    for (args, msg) in [
        (
            vec!["--trainer", "gradient", "--sweeps", "2"],
            "--sweeps applies to the sweep trainer",
        ),
        (
            vec!["--trainer", "gradient", "--lambda", "0.5"],
            "--lambda applies to the sweep trainer",
        ),
        (
            vec!["--trainer", "gradient", "--final-refit", "softmax"],
            "--final-refit applies to the sweep trainer",
        ),
        (
            vec!["--trainer", "gradient", "--max-bond", "4,8"],
            "one fixed bond dimension",
        ),
        (vec!["--epochs", "3"], "--epochs applies to --trainer gradient"),
        (vec!["--shift", "1"], "--shift applies to --trainer gradient"),
        (
            vec!["--max-bond", "1000000000000"],
            "--max-bond 1000000000000: the environments at that cap would need",
        ),
        (
            vec!["--max-bond", "18446744073709551615"],
            "more than this machine's",
        ),
        (vec!["--device", "cuda"], "--device applies to --trainer gradient"),
        (
            vec!["--trainer", "gradient", "--device", "gpu"],
            "expected cpu, cuda or cuda:N",
        ),
        (
            vec!["--trainer", "gradient", "--shift", "65"],
            "shift is 65: it must be at most 64 pixels",
        ),
        (
            vec!["--test-limit", "0"],
            "the test set of MNIST sample is empty (the limit is 0)",
        ),
        (
            vec!["--train-limit", "0"],
            "the train set of MNIST sample is empty (the limit is 0)",
        ),
        (
            vec!["--train-limit", "200", "--turn-site", "100000"],
            "--turn-site is 100000: the chain has sites 0..196",
        ),
        (
            vec!["--final-refit", "softmax", "--final-refit-lambda=-5"],
            "must be finite and >= 0",
        ),
        (
            vec!["--final-refit-lambda", "1e-3"],
            "--final-refit-lambda is 0.001: it is the penalty of the final refit, which is not asked for",
        ),
    ] {
        let output = tnml()
            .args(["mps", "train"])
            .args(&args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(msg),
            "{args:?}: {stderr}"
        );
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    let run = tmp.path().join("m");
    tnml()
        .args([
            "mps",
            "train",
            "--train-limit",
            "200",
            "--test-limit",
            "50",
            "--max-bond",
            "2",
        ])
        .args(["--sweeps", "1", "--out"])
        .arg(&run)
        .assert()
        .success();
    tnml()
        .args(["mps", "eval", "--model"])
        .arg(run.join("model.safetensors"))
        .args(["--limit", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("the test set of MNIST sample is empty"));
    // the figures of an MPS run: error per sweep (tnml plot read only epoch records before)
    tnml().arg("plot").arg(&run).assert().success();
    assert!(run.join("plots/error.png").is_file() && run.join("plots/error.svg").is_file());
}

/// Absurd sizes are refused with the figures, before anything is allocated or written.
#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    // a safetensors tensor of shape [0, 10^18]
    let empty = tmp.path().join("empty.safetensors");
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![0, 1_000_000_000_000_000_000],
        &[],
    )
    .unwrap();
    std::fs::write(&empty, safetensors::serialize([("w", view)], None).unwrap()).unwrap();
    let out = tmp.path().join("never");
    let empty_s = empty.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "mpo",
                "compress",
                "--input",
                empty_s.as_str(),
                "--in-modes",
                "4,4",
                "--out-modes",
                "4,4",
            ],
            "an empty matrix has no MPO",
        ),
        (
            vec![
                "entangle",
                empty_s.as_str(),
                "--in-modes",
                "4,4",
                "--out-modes",
                "4,4",
            ],
            "holds no weight of 2 or more dimensions in F32 or F64 (left out: w: shape [0, 1000000000000000000] (empty))",
        ),
        (
            vec![
                "mpo",
                "compress",
                "--in-modes",
                "100000,10",
                "--out-modes",
                "100000,10",
            ],
            "more than this machine's",
        ),
        (
            vec![
                "mpo",
                "compress",
                "--in-modes",
                "9223372036854775809,3",
                "--out-modes",
                "2,2",
            ],
            "the modes multiply past",
        ),
        (
            vec!["mps", "train", "--trainer", "gradient", "--max-bond", "100000"],
            "more than this machine's",
        ),
        (
            vec!["data", "show", "--cols", "18446744073709551615"],
            "--cols 18446744073709551615: use 1 to 256",
        ),
        (
            vec!["data", "show", "--scale", "100000000"],
            "--scale 100000000: use 1 to 32",
        ),
        (
            vec!["net", "train", "--threads", "100000"],
            "--threads 100000: use 1 to 4096",
        ),
    ];
    for (args, msg) in cases {
        let mut cmd = tnml();
        cmd.args(&args);
        if args[0] != "data" {
            cmd.arg("--out").arg(&out);
        }
        let output = cmd.timeout(std::time::Duration::from_secs(60)).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(msg),
            "{args:?}: {stderr}"
        );
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
}

/// A failed save (a full disk) stops the run at once and names the last model actually saved.
#[test]
fn a_failed_save_stops_mps_training_and_names_the_last_good_model() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    let output = tnml()
        .env("TNML_FAULT", "mps-save:2")
        .args([
            "mps",
            "train",
            "--train-limit",
            "200",
            "--test-limit",
            "50",
            "--max-bond",
            "2",
        ])
        .args(["--sweeps", "3", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("training stopped") && stderr.contains("model.safetensors (sweep 1)"),
        "{stderr}"
    );
    assert!(!stderr.contains("sweep 3:"), "it kept sweeping: {stderr}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1);
    assert!(run.join("model.safetensors").is_file());
}

/// A diverging gradient run stops with the epoch and batch, exits non-zero, keeps a finite model.
#[test]
fn a_diverging_gradient_run_stops_and_keeps_the_last_good_model() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("g");
    let output = tnml()
        .args([
            "mps",
            "train",
            "--trainer",
            "gradient",
            "--train-limit",
            "200",
            "--test-limit",
            "50",
        ])
        .args(["--max-bond", "4", "--epochs", "2", "--lr", "1e30", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("training diverged at epoch 1, batch 1"),
        "{stderr}"
    );
    let model = tnml_model(&run.join("model-last-good.safetensors"));
    assert!(model.iter().all(|x| x.is_finite() && x.abs() <= 1e8));
}

/// Every f64 of a model file's tensors.
fn tnml_model(path: &std::path::Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .iter()
        .flat_map(|(_, t)| {
            t.data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Messages point at what the user gave (issue 30, item 16): a dangling link as --out, a file or
/// an empty folder as a checkpoint, a data file that is a FIFO or a device.
#[test]
fn messages_name_what_was_given() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("dangling");
    std::os::unix::fs::symlink(tmp.path().join("nowhere/x"), &link).unwrap();
    tnml()
        .args([
            "mpo",
            "compress",
            "--in-modes",
            "2,2",
            "--out-modes",
            "2,2",
            "--out",
        ])
        .arg(&link)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("is a symbolic link to")
                .and(predicate::str::contains("which does not exist")),
        );
    let file = tmp.path().join("w.safetensors");
    std::fs::write(&file, b"x").unwrap();
    for (target, says) in [
        (file.clone(), "is a file, not a run or checkpoint directory"),
        (tmp.path().to_path_buf(), "holds no checkpoint"),
        (tmp.path().join("absent"), "does not exist"),
    ] {
        tnml()
            .args(["net", "eval", "--checkpoint"])
            .arg(&target)
            .assert()
            .failure()
            .stderr(predicate::str::contains(says).and(predicate::str::contains("checkpoint.json:").not()));
    }
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::symlink("/dev/zero", data.join("train-images-idx3-ubyte.gz")).unwrap();
    tnml()
        .args(["data", "info", "--dataset", "mnist", "--data-dir"])
        .arg(&data)
        .assert()
        .failure()
        .stderr(predicate::str::contains("is a character device, not a data file"));
}

/// `--bond` has one meaning (the MPO layers' bond dimension of `net train`): where it used to be
/// an alias of `--max-bond`, the error says where the cap went.
#[test]
fn bond_has_one_meaning_and_the_old_alias_says_where_it_went() {
    for args in [
        &["mps", "train", "--bond", "4"][..],
        &[
            "mpo",
            "compress",
            "--in-modes",
            "2",
            "--out-modes",
            "2",
            "--bond",
            "2",
        ][..],
    ] {
        tnml()
            .args(args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(
                "a cap on bond dimensions is --max-bond",
            ));
    }
    tnml()
        .args(["mps", "project", "--help"])
        .assert()
        .success()
        .stdout(predicates::str::contains("--at-bond"));
}
