//! `mpirun -np 2 tnml mps train` (built with `--features mpi`) on the shipped sample: the same
//! model and figures as one process, rank 0 alone writes, a failing rank ends the job with its
//! message, and `--resume` works with another number of ranks. Needs Open MPI's `mpirun`
//! (`.ci/run` installs it and runs this file as root, hence `--allow-run-as-root`).
#![cfg(feature = "mpi")]

use std::path::Path;
use std::process::{Command, Output};

fn tnml_bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("tnml")
}

/// `tnml ARGS` on `ranks` MPI ranks (0: without mpirun), with extra environment `env`.
fn run(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = if ranks == 0 {
        Command::new(tnml_bin())
    } else {
        let mut c = Command::new("mpirun");
        c.args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            &ranks.to_string(),
        ]);
        for (k, _) in env {
            c.args(["-x", k]);
        }
        c.arg(tnml_bin());
        c
    };
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("mpirun (Open MPI) is installed")
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "mps",
        "train",
        "--max-bond",
        "8",
        "--train-limit",
        "2100", // two shards of whole blocks of sums (tnml_mps::gemm::SUM_BLOCK_ROWS = 1024)
        "--test-limit",
        "500",
    ];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--out", out]);
    a
}

/// `(sweep or epoch, train error, test error, cost or loss)` of each line of metrics.jsonl.
fn figures(run: &Path, cost: &str) -> Vec<[f64; 4]> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let step = v
                .get("sweep")
                .or(v.get("epoch"))
                .and_then(|s| s.as_f64())
                .unwrap();
            [
                step,
                v["train_error"].as_f64().unwrap(),
                v["test_error"].as_f64().unwrap(),
                v[cost].as_f64().unwrap(),
            ]
        })
        .collect()
}

/// `tnml mps eval --compare`'s agreement (fraction), tensor distance and largest relative
/// difference of one site tensor.
fn compare(a: &Path, b: &Path) -> (f64, f64, f64) {
    let out = Command::new(tnml_bin())
        .args(["mps", "eval", "--limit", "1000", "--model"])
        .arg(a.join("model.safetensors"))
        .arg("--compare")
        .arg(b.join("model.safetensors"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("compared with"))
        .expect("a comparison line");
    let num = |after: &str, until: char| -> f64 {
        let s = &line[line.find(after).unwrap() + after.len()..];
        s[..s.find(until).unwrap()].trim().parse().unwrap()
    };
    (
        num("(", '%') / 100.0,
        num("||W - W'|| / ||W|| =", ';'),
        num("largest site difference", '('),
    )
}

/// The same steps, errors and (up to the order of f64 additions) costs.
fn assert_same_figures(one: &[[f64; 4]], two: &[[f64; 4]]) {
    assert_eq!(one.len(), two.len());
    for (a, b) in one.iter().zip(two) {
        assert_eq!(a[..3], b[..3], "{a:?} vs {b:?}");
        assert!((a[3] - b[3]).abs() <= 1e-9 * b[3].abs(), "cost {a:?} vs {b:?}");
    }
}

#[test]
fn two_ranks_train_the_model_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let extra = ["--sweeps", "1", "--cg-passes", "2"];
    ok(&run(0, &train_args(one.to_str().unwrap(), &extra), &[]));
    let stderr = ok(&run(2, &train_args(two.to_str().unwrap(), &extra), &[]));
    // every rank reports its memory, rank 0 alone prints progress and writes
    assert!(
        stderr.contains("rank 0 of 2: 1024 training images: environments"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rank 1 of 2: 1076 training images: environments"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rank 1 of 2: environments") && stderr.contains("peak resident memory"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("sweep 1: train error").count(), 1, "{stderr}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(two.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["ranks"], 2);
    assert_eq!(config["train_samples"], 2100);
    // shards of whole blocks: the same model bit for bit, the same figures
    assert_same_figures(&figures(&one, "cost"), &figures(&two, "cost"));
    let (agree, distance, site) = compare(&one, &two);
    // every site tensor equal: the largest site difference is 0 too
    assert_eq!((agree, distance, site), (1.0, 0.0, 0.0));
}

#[test]
fn two_ranks_of_the_gradient_trainer_take_the_steps_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let extra = [
        "--trainer",
        "gradient",
        "--feature-map",
        "linear",
        "--epochs",
        "2",
        "--batch-size",
        "50",
    ];
    let args = |p: &Path| -> Vec<String> {
        let mut a = vec![
            "mps",
            "train",
            "--max-bond",
            "6",
            "--train-limit",
            "600",
            "--test-limit",
            "300",
        ];
        a.extend_from_slice(&extra);
        a.push("--out");
        let mut a: Vec<String> = a.into_iter().map(String::from).collect();
        a.push(p.to_str().unwrap().to_string());
        a
    };
    let (a1, a2) = (args(&one), args(&two));
    ok(&run(0, &a1.iter().map(String::as_str).collect::<Vec<_>>(), &[]));
    ok(&run(2, &a2.iter().map(String::as_str).collect::<Vec<_>>(), &[]));
    let (f1, f2) = (figures(&one, "loss"), figures(&two, "loss"));
    // no SVD, no truncation: the two runs differ by rounding alone
    for (a, b) in f1.iter().zip(&f2) {
        assert_eq!(a[1], b[1], "{a:?} vs {b:?}");
        assert_eq!(a[2], b[2], "{a:?} vs {b:?}");
        assert!((a[3] - b[3]).abs() <= 1e-5 * b[3].abs(), "{a:?} vs {b:?}");
    }
    let (agree, distance, _) = compare(&one, &two);
    assert!(agree >= 0.999 && distance < 1e-3, "{agree} {distance}");
}

#[test]
fn a_failing_rank_ends_the_job_with_its_message() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("r");
    let out = run(
        2,
        &train_args(r.to_str().unwrap(), &["--sweeps", "1"]),
        &[("TNML_FAULT", "rank-load:1")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("error: rank 1 of 2: TNML_FAULT: simulated failure"),
        "{stderr}"
    );
    // rank 0 had not created the run directory: nothing half-written
    assert!(!r.exists());
}

#[test]
fn resume_with_another_number_of_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("r");
    let args = |sweeps: &'static str, resume: bool| -> Vec<String> {
        let mut a: Vec<String> = [
            "mps",
            "train",
            "--max-bond",
            "4,6",
            "--train-limit",
            "600",
            "--test-limit",
            "200",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        a.extend([
            "--sweeps".into(),
            sweeps.into(),
            if resume { "--resume" } else { "--out" }.into(),
        ]);
        a.push(r.to_str().unwrap().into());
        a
    };
    let call = |ranks: usize, a: Vec<String>| {
        let v: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(&run(ranks, &v, &[]))
    };
    call(2, args("1", false));
    call(0, args("2", true));
    call(2, args("3", true));
    let steps: Vec<f64> = figures(&r, "cost").iter().map(|f| f[0]).collect();
    assert_eq!(steps, [1.0, 2.0, 3.0]);
    let f = figures(&r, "cost");
    assert!(f[2][1] < f[0][1], "it kept learning: {f:?}");
}

#[test]
fn other_commands_refuse_to_run_on_several_ranks() {
    let out = run(2, &["mps", "eval", "--model", "nowhere.safetensors"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("only `tnml mps train` is distributed"),
        "{stderr}"
    );
}
