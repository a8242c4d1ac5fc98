//! `tnml mps train --resume` continues a run from its checkpoint (with any number of MPI ranks:
//! see `mpi.rs`), and what a launcher-started tnml without MPI does.

use std::path::Path;

use crate::common::tnml;

/// `mps train` on 400 sample images at bond 4 then 6, into `run`, `sweeps` sweeps in all.
fn train(run: &Path, sweeps: &str, resume: bool) -> std::process::Output {
    let mut cmd = tnml();
    cmd.args([
        "mps",
        "train",
        "--max-bond",
        "4,6",
        "--train-limit",
        "400",
        "--test-limit",
        "100",
    ])
    .args(["--sweeps", sweeps, "--cg-passes", "2", "--threads", "2"])
    .arg(if resume { "--resume" } else { "--out" })
    .arg(run);
    cmd.output().unwrap()
}

fn sweeps_recorded(run: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["sweep"].as_u64().unwrap(), v["max_bond"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn resume_continues_the_sweeps_and_the_bond_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    let first = train(&run, "1", false);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(sweeps_recorded(&run), [(1, 4)]);
    let before = std::fs::read(run.join("model.safetensors")).unwrap();
    let second = train(&run, "3", true);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("resuming after sweep 1"), "{stderr}");
    assert!(
        stderr.contains("sweep 2: train error") && stderr.contains("sweep 3: train error"),
        "{stderr}"
    );
    // the schedule goes on where it stopped: sweep 2 and 3 at the last cap, 6
    assert_eq!(sweeps_recorded(&run), [(1, 4), (2, 6), (3, 6)]);
    assert_ne!(std::fs::read(run.join("model.safetensors")).unwrap(), before);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        summary.contains("resumed after sweep 1") && summary.contains("| 3 | 6 |"),
        "{summary}"
    );
    assert!(run.join("resume-1.json").is_file());
}

/// A kill between the checkpoint's rename and its metrics line leaves the model one sweep ahead
/// of metrics.jsonl: the model carries its sweep, and the resume continues from it (not one
/// sweep too many, and no sweep recorded under another's number).
#[test]
fn resume_trusts_the_sweep_the_checkpoint_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    assert!(train(&run, "2", false).status.success());
    assert_eq!(sweeps_recorded(&run), [(1, 4), (2, 6)]);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let first = metrics.lines().next().unwrap();
    std::fs::write(run.join("metrics.jsonl"), format!("{first}\n")).unwrap();
    // a temporary file of the interrupted write is there too
    std::fs::write(run.join(".model.safetensors.tmp-99999-0"), b"half").unwrap();
    let out = train(&run, "3", true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the checkpoint holds sweep 2"), "{stderr}");
    assert!(
        stderr.contains("sweep 3: train error") && !stderr.contains("sweep 2: train error"),
        "{stderr}"
    );
    assert_eq!(sweeps_recorded(&run), [(1, 4), (3, 6)]);
    assert!(!run.join(".model.safetensors.tmp-99999-0").exists());
    assert!(!run.join(".tnml-lock").exists());
}

#[test]
fn resume_refuses_what_it_cannot_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    assert!(train(&run, "1", false).status.success());
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    let model = std::fs::read(run.join("model.safetensors")).unwrap();
    let refused = |out: std::process::Output, needle: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(needle),
            "{needle}: {stderr}"
        );
        // nothing of the run was touched
        assert_eq!(std::fs::read(run.join("metrics.jsonl")).unwrap(), metrics);
        assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), model);
    };
    refused(train(&run, "1", true), "already has 1 sweeps");
    refused(train(&tmp.path().join("nowhere"), "2", true), "--resume: reading");
    let out = tnml()
        .args([
            "mps",
            "train",
            "--train-limit",
            "400",
            "--test-limit",
            "100",
            "--sweeps",
            "2",
        ])
        .args(["--feature-map", "linear", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    // options that differ from the run's, given or by default, are listed with the run's values
    refused(out, "--feature-map \"linear\" (the run has \"trig\")");
    let out = tnml()
        .args([
            "mps",
            "train",
            "--max-bond",
            "4,6",
            "--train-limit",
            "400",
            "--test-limit",
            "100",
        ])
        .args([
            "--sweeps",
            "2",
            "--cg-passes",
            "2",
            "--lambda",
            "0.5",
            "--seed",
            "9",
            "--resume",
        ])
        .arg(&run)
        .output()
        .unwrap();
    refused(out, "--lambda 0.5 (the run has 0.0)");
    let out = tnml()
        .args([
            "mps",
            "train",
            "--max-bond",
            "4,6",
            "--train-limit",
            "400",
            "--test-limit",
            "100",
        ])
        .args([
            "--sweeps",
            "2",
            "--cg-passes",
            "2",
            "--dataset",
            "mnist",
            "--resume",
        ])
        .arg(&run)
        .output()
        .unwrap();
    refused(out, "--dataset mnist (the run has mnist-sample)");
    let out = tnml()
        .args(["mps", "train", "--trainer", "gradient", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    refused(out, "--resume applies to the sweep trainer");
    // a corrupt metrics file is named with its line
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("model.safetensors"), &model).unwrap();
    std::fs::copy(run.join("config.json"), broken.join("config.json")).unwrap();
    std::fs::write(broken.join("metrics.jsonl"), "{\"sweep\": 1}\n").unwrap();
    let out = train(&broken, "2", true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("line 1: not a sweep record"),
        "{stderr}"
    );
}

/// Started by an MPI launcher as one of several ranks, a tnml built without MPI would train the
/// whole set once per rank, each writing its own run directory: it refuses.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_launcher_started_tnml_without_mpi_refuses_to_run_as_one_of_several_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tnml()
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .args(["mps", "train", "--train-limit", "100", "--out"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("one of 2 MPI ranks") && stderr.contains("--features mpi"),
        "{stderr}"
    );
    assert!(!tmp.path().join("r").exists());
    // one rank (mpirun -np 1) is today's program
    let out = tnml()
        .env("OMPI_COMM_WORLD_SIZE", "1")
        .args(["data", "info"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `mps train` at bond 3, one sweep on 400 sample images (and 50 test images), with `extra`
/// options, into `out`: success and stderr.
fn small_sweep(extra: &[&str], out: &Path) -> (bool, String) {
    let o = tnml()
        .args(["mps", "train", "--max-bond", "3", "--sweeps", "1"])
        .args(["--train-limit", "400", "--test-limit", "50"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8(o.stderr).unwrap())
}

/// `--truncated-start`: the label reaches the turn site with the bonds at the first cap (the
/// exact start's are wider), and the gradient trainer, which has no such move, refuses it.
#[test]
fn a_truncated_start_keeps_the_first_bonds_at_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, truncated) = small_sweep(&["--truncated-start"], &tmp.path().join("t"));
    assert!(ok, "{truncated}");
    assert!(
        truncated.contains("bonds up to 3)") && truncated.contains("truncated at the cap"),
        "{truncated}"
    );
    let (ok, exact) = small_sweep(&[], &tmp.path().join("e"));
    assert!(ok && !exact.contains("bonds up to 3)"), "{exact}");
    let o = tnml()
        .args([
            "mps",
            "train",
            "--trainer",
            "gradient",
            "--truncated-start",
            "--out",
        ])
        .arg(tmp.path().join("g"))
        .output()
        .unwrap();
    let refused = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && refused.contains("--truncated-start"),
        "{refused}"
    );
}

/// With a validation split the sweep trainer reports the validation error of both decision rules
/// (argmax |f|, the quadratic cost's, and argmax f), the one the model uses among them.
#[test]
fn both_decision_rules_are_measured_on_the_validation_split() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, err) = small_sweep(&["--validation", "100"], &tmp.path().join("r"));
    assert!(ok, "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("validation error by decision rule"))
        .unwrap_or_else(|| panic!("{err}"));
    let value = |key: &str| -> f64 {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.split([',', ' '])
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    let (magnitude, signed) = (value("argmax |f| "), value("argmax f "));
    for e in [magnitude, signed] {
        assert!(
            (0.0..=1.0).contains(&e) && (e * 100.0 - (e * 100.0).round()).abs() < 1e-9,
            "{line}"
        );
    }
    assert!(
        line.contains("(100 images; the model predicts argmax |f|)"),
        "{line}"
    );
    // the rule the model uses is the one its sweep line reports
    let sweep = err.lines().find(|l| l.starts_with("sweep 1:")).unwrap();
    assert!(
        sweep.contains(&format!("validation error {magnitude:.4}")),
        "{sweep} / {line}"
    );
}
