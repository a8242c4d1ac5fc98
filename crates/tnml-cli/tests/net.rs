//! `tnml net`: train / resume / eval / compress on the shipped MNIST sample, VGG on CIFAR-format
//! files, and clear errors on bad input.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn tnml() -> Command {
    Command::cargo_bin("tnml").unwrap()
}

fn metrics_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count()
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
        .args(["--bond", "8", "--finetune-epochs", "1"])
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

#[test]
fn vgg_trains_a_few_steps_on_cifar_format_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    let mut rec = vec![0u8; 8 * 3073];
    for (i, r) in rec.chunks_mut(3073).enumerate() {
        r[0] = (i % 10) as u8;
        for (j, v) in r[1..].iter_mut().enumerate() {
            *v = ((i * 37 + j * 11) % 251) as u8;
        }
    }
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ] {
        std::fs::write(dir.join(name), &rec).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &rec[..4 * 3073]).unwrap();
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
    tnml()
        .args([
            "net",
            "train",
            "--model",
            "vgg16",
            "--epochs",
            "1",
            "--train-limit",
            "10",
        ])
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
