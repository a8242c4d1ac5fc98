//! `tnml net`: train / resume / eval / compress on the shipped MNIST sample, VGG on CIFAR-format
//! files, and clear errors on bad input.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

use crate::common::tnml;

fn metrics_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count()
}

/// `tnml net train --model fc2` on 300 training and 100 test images of the shipped sample.
fn small_fc2_train() -> Command {
    let mut cmd = tnml();
    cmd.args([
        "net",
        "train",
        "--model",
        "fc2",
        "--train-limit",
        "300",
        "--test-limit",
        "100",
    ]);
    cmd
}

#[test]
fn train_resume_eval_and_compress_on_the_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("fc2");
    let limits = ["--train-limit", "1500", "--test-limit", "300"];
    tnml()
        .args(["net", "train", "--model", "fc2", "--epochs", "1", "--lr", "2e-3"])
        .args(limits)
        .arg("--out")
        .arg(&run)
        .assert()
        .success()
        .stderr(contains("fc1").and(contains("epoch   1")));
    for f in [
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "summary.md",
        "checkpoint/checkpoint.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // resume to 2 epochs: one more metrics line, epoch 2 in the checkpoint
    tnml()
        .args(["net", "train", "--epochs", "2", "--resume"])
        .arg(&run)
        .args(limits)
        .assert()
        .success()
        .stderr(contains("resuming").and(contains("epoch   2")));
    assert_eq!(metrics_lines(&run), 2);
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/checkpoint.json")).unwrap()).unwrap();
    assert_eq!(header["epoch"], 2);

    let out = tnml()
        .args(["net", "eval", "--checkpoint"])
        .arg(&run)
        .args(["--test-limit", "300"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let acc: f64 = text
        .split("test accuracy ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc > 80.0, "{text}");

    let comp = tmp.path().join("comp");
    tnml()
        .args(["net", "compress", "--checkpoint"])
        .arg(&run)
        .args(["--max-bond", "8", "--finetune-epochs", "1"])
        .args(limits)
        .arg("--out")
        .arg(&comp)
        .assert()
        .success()
        .stderr(contains("after TT-SVD").and(contains("rho =")));
    let summary = std::fs::read_to_string(comp.join("summary.md")).unwrap();
    assert!(
        summary.contains("| dense |") && summary.contains("fine-tuning"),
        "{summary}"
    );
    assert!(comp.join("compression.json").is_file());
}

#[test]
fn gao_preset_reports_the_papers_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    tnml()
        .args([
            "net", "train", "--model", "lenet5", "--mpo", "gao", "--epochs", "1",
        ])
        .args(["--train-limit", "200", "--test-limit", "50"])
        .arg("--out")
        .arg(tmp.path().join("r"))
        .assert()
        .success()
        .stderr(contains("rho = 2860 / 58920 = 0.0485"));
}

/// CIFAR-10 binary batches under `root/cifar-10-batches-bin`: 8 training and 4 test images of
/// a fixed pattern (the real data cannot be downloaded here).
fn write_cifar_format(root: &Path) {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    let mut rec = vec![0u8; 8 * 3073];
    for (i, r) in rec.chunks_mut(3073).enumerate() {
        r[0] = (i % 10) as u8;
        for (j, v) in r[1..].iter_mut().enumerate() {
            *v = ((i * 37 + j * 11) % 251) as u8;
        }
    }
    for k in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{k}.bin")), &rec).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &rec[..4 * 3073]).unwrap();
}

#[test]
fn resnet_and_densenet_train_on_cifar_format_data_and_padded_mnist() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar_format(tmp.path());
    for (model, rho) in [("resnet", "rho = 276 / 2560"), ("densenet40", "rho = 576 / 4480")] {
        for cifar in [true, false] {
            let mut cmd = tnml();
            cmd.args(["net", "train", "--model", model, "--mpo", "gao", "--epochs", "1"])
                .args(["--batch-size", "4", "--train-limit", "8", "--test-limit", "4"]);
            if cifar {
                cmd.args(["--dataset", "cifar10", "--data-dir"]).arg(tmp.path());
            }
            let run = tmp.path().join(format!("{model}-{cifar}"));
            cmd.arg("--out")
                .arg(&run)
                .assert()
                .success()
                .stderr(contains(rho).and(contains("epoch   1")));
            assert!(run.join("model.safetensors").is_file());
        }
    }
}

#[test]
fn vgg_trains_a_few_steps_on_cifar_format_data() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar_format(tmp.path());
    tnml()
        .args([
            "net",
            "train",
            "--model",
            "vgg16",
            "--mpo",
            "gao",
            "--dataset",
            "cifar10",
            "--data-dir",
        ])
        .arg(tmp.path())
        .args([
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--train-limit",
            "8",
            "--optimizer",
            "sgd",
        ])
        .args([
            "--lr",
            "0.01",
            "--nesterov",
            "--weight-decay",
            "2e-4",
            "--lr-decay",
            "step:50:0.316",
        ])
        .arg("--out")
        .arg(tmp.path().join("run"))
        .assert()
        .success()
        .stderr(contains("rho = 10944 / 23633920").and(contains("epoch   1")));
}

#[test]
fn bad_input_names_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    tnml()
        .args([
            "net",
            "train",
            "--model",
            "fc2",
            "--mpo",
            "4,7,7,5->4,4,4,4:4;4,4,4,4->1,1,10,1:4",
        ])
        .assert()
        .failure()
        .stderr(contains("layer fc1").and(contains("980")));
    tnml()
        .args(["net", "train", "--mpo", "gao", "--bond", "0"])
        .assert()
        .failure()
        .stderr(contains("is 0"));
    // colour images into a grey-image model (grey MNIST into the CIFAR-10 networks is padded
    // and repeated into 3 channels instead)
    write_cifar_format(tmp.path());
    tnml()
        .args([
            "net",
            "train",
            "--model",
            "fc2",
            "--dataset",
            "cifar10",
            "--data-dir",
        ])
        .arg(tmp.path())
        .args(["--epochs", "1", "--train-limit", "8"])
        .arg("--out")
        .arg(tmp.path().join("v"))
        .assert()
        .failure()
        .stderr(contains("3x32x32").and(contains("1x28x28")));
    tnml()
        .args(["net", "eval", "--checkpoint"])
        .arg(tmp.path())
        .assert()
        .failure()
        .stderr(contains("checkpoint.json"));
    tnml()
        .args(["net", "train", "--lr-decay", "exp"])
        .assert()
        .failure()
        .stderr(contains("--lr-decay"));
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{}", path.display());
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn entanglement_is_recorded_plotted_and_analysed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("talk");
    tnml()
        .args([
            "net", "train", "--model", "talk", "--mpo", "gao", "--bond", "4", "--epochs", "2",
        ])
        .args(["--train-limit", "600", "--test-limit", "200"])
        .arg("--out")
        .arg(&run)
        .assert()
        .success();
    // epochs 0, 1, 2 x 4 bonds
    let ee = std::fs::read_to_string(run.join("entanglement.jsonl")).unwrap();
    assert_eq!(ee.lines().count(), 12);
    let first: serde_json::Value = serde_json::from_str(ee.lines().next().unwrap()).unwrap();
    assert!(first["entropy"].as_f64().unwrap() <= first["bound"].as_f64().unwrap() + 1e-12);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("random init S"), "{summary}");
    for f in [
        "entropy-hidden.png",
        "spectrum-hidden-bond2.svg",
        "accuracy.png",
        "loss.svg",
    ] {
        assert!(run.join("plots").join(f).is_file(), "{f}");
    }
    assert_eq!(png_size(&run.join("plots/entropy-hidden.png")), (900, 560));
    // redraw from the records
    std::fs::remove_dir_all(run.join("plots")).unwrap();
    tnml()
        .arg("plot")
        .arg(&run)
        .args(["--format", "png"])
        .assert()
        .success()
        .stdout(contains("entropy-hidden.png"));
    assert!(run.join("plots/spectrum-hidden-bond1.png").is_file());

    // tnml entangle on the model: truncation table and accuracy vs bond with retraining
    let ent = tmp.path().join("ent");
    tnml()
        .arg("entangle")
        .arg(&run)
        .args([
            "--bonds",
            "1,2,4",
            "--retrain-epochs",
            "1",
            "--train-limit",
            "300",
            "--test-limit",
            "100",
        ])
        .arg("--out")
        .arg(&ent)
        .assert()
        .success()
        .stdout(contains("D <= 4").and(contains("after retraining")));
    let csv = std::fs::read_to_string(ent.join("truncation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    // --json: stdout is the JSON alone, the accuracy lines go to stderr
    let out = tnml()
        .arg("entangle")
        .arg(&run)
        .args(["--json", "--accuracy", "--bonds", "1,2", "--test-limit", "50"])
        .arg("--out")
        .arg(tmp.path().join("ent-json"))
        .assert()
        .success()
        .stderr(contains("D <= 2: test accuracy"))
        .get_output()
        .stdout
        .clone();
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&out);
    assert!(
        parsed.is_ok(),
        "stdout is not JSON: {}",
        String::from_utf8_lossy(&out)
    );
    // a run directory has its own modes: the file-only options are refused
    tnml()
        .arg("entangle")
        .arg(&run)
        .args(["--tensor", "fc1.weight"])
        .arg("--out")
        .arg(tmp.path().join("never"))
        .assert()
        .failure()
        .stderr(contains("--tensor applies to a safetensors state_dict"));
    assert!(ent.join("accuracy.csv").is_file() && ent.join("plots/truncation.png").is_file());
}

#[test]
fn entangle_reads_a_dense_safetensors_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    // a 16 x 12 matrix of rank 1 in the (in 3,4; out 4,4) split: zero entanglement
    let (rows, cols) = (16usize, 12usize);
    let data: Vec<u8> = (0..rows * cols)
        .flat_map(|k| {
            let (r, c) = (k / cols, k % cols);
            (((r % 4) as f32 + 1.0)
                * ((r / 4) as f32 + 2.0)
                * ((c % 4) as f32 + 1.0)
                * ((c / 4) as f32 - 0.5))
                .to_le_bytes()
        })
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![rows, cols], &data).unwrap();
    let path = tmp.path().join("w.safetensors");
    std::fs::write(
        &path,
        safetensors::serialize([("layer.weight", view)], None).unwrap(),
    )
    .unwrap();
    let out = tnml()
        .arg("entangle")
        .arg(&path)
        .args(["--in-modes", "3,4", "--out-modes", "4,4"])
        .arg("--out")
        .arg(tmp.path().join("e"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("| layer.weight | 1 | 1 | 0.0000 |"), "{text}");
    tnml()
        .arg("entangle")
        .arg(&path)
        .args(["--in-modes", "3,5", "--out-modes", "4,4"])
        .assert()
        .failure()
        .stderr(contains("15").and(contains("12")));
}

#[test]
fn experiment_config_runs_every_variant() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("e.toml");
    std::fs::write(
        &cfg,
        "name = \"mini\"\n[base]\nmodel = \"talk\"\nmpo = \"gao\"\nbond = 2\nepochs = 1\ntrain_limit = 300\ntest_limit = 100\n\
         [[variant]]\nname = \"a\"\n[[variant]]\nname = \"b\"\nnorm = \"layer\"\n",
    )
    .unwrap();
    let out = tmp.path().join("x");
    tnml()
        .arg("experiment")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("| a |").and(contains("| b |")));
    assert!(out.join("comparison.csv").is_file() && out.join("plots/entropy-by-bond.png").is_file());
    assert!(out.join("b/metrics.jsonl").is_file());
    // a bad option is refused before anything trains
    std::fs::write(
        &cfg,
        "name = \"bad\"\n[[variant]]\nname = \"a\"\nnorm = \"sideways\"\n",
    )
    .unwrap();
    tnml()
        .arg("experiment")
        .arg(&cfg)
        .arg("--out")
        .arg(tmp.path().join("y"))
        .assert()
        .failure()
        .stderr(contains(
            "--norm \"sideways\": \"sideways\": use none, layer or batch",
        ));
    assert!(!tmp.path().join("y").exists());
    // unknown keys, another run to resume, and names that share a directory are refused up front
    let many = "[[variant]]\nname = \"v\"\n".repeat(1001);
    for (toml, msg) in [
        (
            "[[variant]]\nname = \"a\"\nepoch = 3\n",
            "unknown option \"epoch\"",
        ),
        (
            "[[variant]]\nname = \"a\"\nresume = \"runs/x\"\n",
            "unknown option \"resume\"",
        ),
        (
            "[[variant]]\nname = \"D=2\"\n[[variant]]\nname = \"D_2\"\n",
            "would share the run directory",
        ),
        (
            "[[variant]]\nname = \"a\"\npairing = [1, 0]\n",
            "--pairing applies to the talk model",
        ),
        (
            "[[variant]]\nname = \"a\"\nlr_decay = \"exp:-1\"\n",
            "must lie in (0, 1]",
        ),
        (
            "[[variant]]\nname = \"a\"\nmomentum = -5.0\n",
            "--momentum -5: use a value in [0, 1)",
        ),
        (
            "[[variant]]\nname = \"a\"\nmomentum = nan\n",
            "--momentum NaN: use a value in [0, 1)",
        ),
        (many.as_str(), "1001 variants, at most 1000"),
    ] {
        std::fs::write(&cfg, format!("name = \"bad\"\n{toml}")).unwrap();
        tnml()
            .arg("experiment")
            .arg(&cfg)
            .arg("--out")
            .arg(tmp.path().join("z"))
            .assert()
            .failure()
            .stderr(contains(msg));
        assert!(!tmp.path().join("z").exists(), "{toml}");
    }
    // --set values are typed as TOML (epochs=0 is a number, and is refused as one)
    std::fs::write(&cfg, "name = \"ok\"\n[[variant]]\nname = \"a\"\n").unwrap();
    tnml()
        .arg("experiment")
        .arg(&cfg)
        .args(["--set", "epochs=0", "--out"])
        .arg(tmp.path().join("w"))
        .assert()
        .failure()
        .stderr(contains("--epochs: 0 epochs train nothing"));
}

#[test]
fn shipped_experiment_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let t: toml::Table = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            assert!(
                t.contains_key("name") && t.contains_key("variant"),
                "{}",
                p.display()
            );
            n += 1;
        }
    }
    assert_eq!(n, 5);
}

#[test]
fn resume_restores_the_saved_options_and_refuses_other_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    small_fc2_train()
        .args(["--epochs", "1", "--seed", "3", "--out"])
        .arg(&run)
        .assert()
        .success()
        .stderr(contains("training on 300 images, testing on 100"));
    // nothing to do without a higher epoch total (the default of --epochs does not raise it)
    tnml()
        .args(["net", "train", "--resume"])
        .arg(&run)
        .assert()
        .failure()
        .stderr(contains("has trained 1 of 1 epochs already"));
    // the data options are the saved ones, not the defaults
    tnml()
        .args(["net", "train", "--epochs", "2", "--resume"])
        .arg(&run)
        .assert()
        .success()
        .stderr(contains("training on 300 images, testing on 100").and(contains("epoch   2")));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["args"]["epochs"], 2);
    assert_eq!(config["train"]["epochs"], 2);
    assert_eq!(config["args"]["train_limit"], 300);
    assert_eq!(config["resumes"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        std::fs::read_to_string(run.join("resumes.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    // an option given again with another value is refused before anything trains
    for (flag, value, msg) in [
        ("--train-limit", "500", "--train-limit 500 (the run has 300)"),
        ("--lr", "0.1", "--lr 0.1 (the run has 0.001)"),
        (
            "--dataset",
            "fashion-mnist",
            "--dataset \"fashion-mnist\" (the run has \"mnist-sample\")",
        ),
    ] {
        tnml()
            .args(["net", "train", "--epochs", "3", flag, value, "--resume"])
            .arg(&run)
            .assert()
            .failure()
            .stderr(contains(msg));
    }
    assert_eq!(metrics_lines(&run), 2);
}

#[test]
fn a_diverging_run_keeps_no_non_finite_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("d");
    let out = small_fc2_train()
        .args(["--epochs", "2", "--lr", "1e30", "--out"])
        .arg(&run)
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("training stopped") && stderr.contains("at epoch"),
        "{stderr}"
    );
    if let Ok(bytes) = std::fs::read(run.join("checkpoint/checkpoint.json")) {
        let header: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for r in header["history"].as_array().unwrap() {
            assert!(r["train_loss"].as_f64().is_some_and(f64::is_finite), "{r}");
        }
    } else {
        assert!(stderr.contains("nothing was saved"), "{stderr}");
    }
}

/// A kill at any step of saving a checkpoint leaves a run that eval and --resume accept, whose
/// checkpoint is all of one epoch and whose metrics match it after the resume.
#[test]
fn a_kill_while_checkpointing_leaves_a_whole_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    for step in ["model", "optimizer", "header", "synced", "old-moved", "swapped"] {
        let run = tmp.path().join(step);
        let out = small_fc2_train()
            .env("TNML_FAULT", format!("checkpoint:2:{step}"))
            .args(["--epochs", "2", "--out"])
            .arg(&run)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{step}: the fault did not fire");
        let ck = ["checkpoint", "checkpoint.old"]
            .iter()
            .map(|d| run.join(d))
            .find(|d| d.join("checkpoint.json").is_file())
            .unwrap_or_else(|| panic!("{step}: no whole checkpoint"));
        let header: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ck.join("checkpoint.json")).unwrap()).unwrap();
        let want = if step == "swapped" { 2 } else { 1 };
        assert_eq!(header["epoch"], want, "{step}");
        assert_eq!(header["history"].as_array().unwrap().len(), want, "{step}");
        tnml()
            .args(["net", "eval", "--checkpoint"])
            .arg(&run)
            .args(["--test-limit", "100"])
            .assert()
            .success();
        tnml()
            .args(["net", "train", "--epochs", "3", "--resume"])
            .arg(&run)
            .assert()
            .success()
            .stderr(contains(format!("after epoch {want} of 3")));
        let epochs: Vec<u64> = std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(epochs, vec![1, 2, 3], "{step}");
        assert!(
            !run.join("checkpoint.new").exists() && !run.join("checkpoint.old").exists(),
            "{step}"
        );
    }
}

/// A command reads only the files it needs: a corrupt training file does not stop an
/// evaluation of the test split. An empty test file is an error, not accuracy 0.00%.
#[test]
fn eval_reads_only_the_test_split_and_empty_sets_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    tnml()
        .args([
            "net",
            "train",
            "--model",
            "fc2",
            "--train-limit",
            "200",
            "--test-limit",
            "100",
        ])
        .args(["--epochs", "1", "--entangle-every", "0", "--out"])
        .arg(&run)
        .assert()
        .success();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample");
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(sample.join(f), data.join(f)).unwrap();
    }
    std::fs::write(data.join("train-images-idx3-ubyte.gz"), b"not gzip, not idx").unwrap();
    std::fs::write(data.join("train-labels-idx1-ubyte.gz"), b"").unwrap();
    tnml()
        .args(["net", "eval", "--checkpoint"])
        .arg(&run)
        .args(["--dataset", "mnist", "--test-limit", "100", "--data-dir"])
        .arg(&data)
        .assert()
        .success()
        .stdout(contains("(100 images)"));
    // an IDX test file with no image
    let empty = |dims: &[u32]| {
        let mut b = vec![0u8, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b
    };
    std::fs::write(data.join("t10k-images-idx3-ubyte.gz"), empty(&[0, 28, 28])).unwrap();
    std::fs::write(data.join("t10k-labels-idx1-ubyte.gz"), empty(&[0])).unwrap();
    tnml()
        .args(["net", "eval", "--checkpoint"])
        .arg(&run)
        .args(["--dataset", "mnist", "--data-dir"])
        .arg(&data)
        .assert()
        .failure()
        .stderr(contains("the test set is empty"));
    // an entanglement record naming an absurd bond is refused, not drawn
    std::fs::write(
        run.join("entanglement.jsonl"),
        r#"{"epoch":1,"layer":"fc1","bond":1000000000,"bond_dim":2,"entropy":0.1,"bound":0.7,"ratio":0.1,"renyi2":0.1,"spectrum":[1.0],"discarded":[0.0]}"#,
    )
    .unwrap();
    tnml()
        .arg("plot")
        .arg(&run)
        .assert()
        .failure()
        .stderr(contains("has bond 1000000000"));
}

/// A failed write (a full disk) stops the run, names the epoch of the checkpoint actually on
/// disk and leaves no partial checkpoint behind.
#[test]
fn a_failed_checkpoint_write_names_the_last_good_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("full");
    let out = small_fc2_train()
        .env("TNML_FAULT", "checkpoint:2:model:io")
        .args(["--epochs", "3", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("the last good checkpoint (epoch 1)"), "{stderr}");
    assert!(stderr.contains("simulated full disk"), "{stderr}");
    assert!(!run.join("checkpoint.new").exists());
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/checkpoint.json")).unwrap()).unwrap();
    assert_eq!(header["epoch"], 1);
    let names: Vec<String> = std::fs::read_dir(run.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn a_validation_split_is_held_out_reported_and_kept_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("v");
    small_fc2_train()
        .args(["--epochs", "1", "--validation", "100", "--out"])
        .arg(&run)
        .assert()
        .success()
        .stderr(contains("training on 200 images").and(contains("validation accuracy")));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["validation_samples"], 100);
    tnml()
        .args(["net", "train", "--epochs", "2", "--resume"])
        .arg(&run)
        .assert()
        .success();
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len(), 2);
    for r in &recs {
        let acc = r["validation_acc"].as_f64().unwrap();
        // an accuracy over 100 images is a multiple of 1%
        assert!(
            (acc * 100.0 - (acc * 100.0).round()).abs() < 1e-9 && acc > 0.0,
            "{r}"
        );
    }
    assert!(std::fs::read_to_string(run.join("summary.md"))
        .unwrap()
        .contains("| validation acc |"));
    small_fc2_train()
        .args(["--validation", "300", "--out"])
        .arg(tmp.path().join("w"))
        .assert()
        .failure()
        .stderr(contains("--validation: 300 images").and(contains("between 1 and 299")));
}

/// `net compress` refuses what it would ignore: --auto's options without --auto, --lr without
/// fine-tuning, --model with a checkpoint (which names its own architecture); nothing is written.
#[test]
fn net_compress_refuses_options_it_would_ignore() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("fc2");
    tnml()
        .args(["net", "train", "--model", "fc2", "--epochs", "1"])
        .args(["--train-limit", "100", "--test-limit", "50", "--out"])
        .arg(&run)
        .assert()
        .success();
    for (extra, says) in [
        (&["--validation", "100"][..], "--auto"),
        (&["--retrain-epochs", "2"][..], "--auto"),
        (&["--max-drop", "1"][..], "--auto"),
        (&["--uniform-bonds", "2,4"][..], "--auto"),
        (&["--lr", "1e-3"][..], "give --finetune-epochs N"),
        (&["--model", "lenet5"][..], "carries its own (Fc2)"),
    ] {
        let out = tmp.path().join("c");
        tnml()
            .args(["net", "compress", "--test-limit", "50", "--checkpoint"])
            .arg(&run)
            .args(extra)
            .arg("--out")
            .arg(&out)
            .assert()
            .failure()
            .stderr(contains(says));
        assert!(!out.exists(), "{extra:?}");
    }
}

/// A kill after a checkpoint but before that epoch's entanglement records: --resume measures
/// them again from the checkpoint's model (the same numbers an uninterrupted run writes), so
/// entanglement.jsonl has every epoch once (issue 30, item 9).
#[test]
fn resume_rebuilds_the_entanglement_records_a_kill_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let mpo = ["--mpo", "gao", "--entangle-every", "1"];
    let whole = tmp.path().join("whole");
    small_fc2_train()
        .args(mpo)
        .args(["--epochs", "3", "--out"])
        .arg(&whole)
        .assert()
        .success();
    let killed = tmp.path().join("killed");
    let out = small_fc2_train()
        .args(mpo)
        .env("TNML_FAULT", "checkpoint:2:swapped")
        .args(["--epochs", "2", "--out"])
        .arg(&killed)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault did not fire");
    tnml()
        .args(["net", "train", "--epochs", "3", "--resume"])
        .arg(&killed)
        .assert()
        .success();
    let records = |run: &std::path::Path| -> Vec<(u64, String, u64, f64)> {
        std::fs::read_to_string(run.join("entanglement.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["epoch"].as_u64().unwrap(),
                    v["layer"].as_str().unwrap().to_string(),
                    v["bond"].as_u64().unwrap(),
                    v["entropy"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (records(&whole), records(&killed));
    let epochs: Vec<u64> = b.iter().map(|r| r.0).collect();
    for e in 0..=3 {
        assert!(epochs.contains(&e), "epoch {e} missing: {epochs:?}");
    }
    assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.0, &x.1, x.2), (y.0, &y.1, y.2));
        assert!((x.3 - y.3).abs() < 1e-9, "{x:?} vs {y:?}");
    }
}
