"""What the Python package costs over the Rust it wraps, and TT-SVD against NumPy, in one run.

1. `tnml.MPSClassifier.fit` against `tnml mps train` on the same data and options (the shipped
   sample, 6,000 images at 14x14, bond 10, 2 sweeps, squared loss, 2 threads): the wall time of
   `fit` (conversion, class-mean start, embedding, sweeps) against the CLI's whole process (which
   also loads the data, evaluates the test set after each sweep and writes its run directory),
   and the sweeps' own seconds reported by each.
2. `tnml.MPO.from_dense` on a 4096 x 4096 Gaussian matrix, modes (8,8,8,8)x(8,8,8,8), bond 16,
   against the NumPy TT-SVD of bench/core_numpy.py (the same algorithm, LAPACK's SVD) in the
   same process.

Run (after `pip install ./crates/tnml-py` into the venv and `cargo build --release -p tnml-cli`):
    python bench/python_overhead.py [--tnml target/release/tnml] [--repeats 3]
Prints one line per measurement and the ratios.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from core_numpy import tt_svd_mpo  # noqa: E402

import tnml  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def median(xs):
    return float(np.median(xs))


def bench_fit(cli, repeats):
    X, y = tnml.load_dataset("mnist-sample", "train", shuffle_seed=0)
    Xt, yt = tnml.load_dataset("mnist-sample", "test")
    py_wall, py_sweeps, cli_wall, cli_sweeps = [], [], [], []
    for _ in range(repeats):
        clf = tnml.MPSClassifier(max_bond=10, sweeps=2, loss="squared", lam=0.0, threads=2)
        t0 = time.perf_counter()
        clf.fit(X, y)
        py_wall.append(time.perf_counter() - t0)
        py_sweeps.append(sum(e["seconds"] for e in clf.history_ if e["event"] == "sweep"))
        py_err = 1 - clf.score(Xt, yt)
        with tempfile.TemporaryDirectory() as d:
            run = pathlib.Path(d) / "run"
            t0 = time.perf_counter()
            subprocess.run(
                [cli, "mps", "train", "--max-bond", "10", "--sweeps", "2", "--threads", "2", "--out", str(run)],
                check=True, capture_output=True,
            )
            cli_wall.append(time.perf_counter() - t0)
            recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
            cli_sweeps.append(sum(r["seconds"] for r in recs))
            cli_err = recs[-1]["test_error"]
    print(f"fit: python {median(py_wall):.2f} s wall ({median(py_sweeps):.2f} s in sweeps), test error {py_err:.4f}")
    print(f"fit: cli    {median(cli_wall):.2f} s wall ({median(cli_sweeps):.2f} s in sweeps), test error {cli_err:.4f}")
    print(f"fit: ratio python wall / cli wall = {median(py_wall) / median(cli_wall):.3f}; "
          f"sweeps python / cli = {median(py_sweeps) / median(cli_sweeps):.3f}; "
          f"python outside the sweeps {median(py_wall) - median(py_sweeps):.2f} s")


def bench_tt_svd(repeats):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4096, 4096))
    modes = [8, 8, 8, 8]
    t_rs, t_np = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        m = tnml.MPO.from_dense(w, modes, modes, max_bond=16)
        t_rs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tt_svd_mpo(w, modes, modes, 16)
        t_np.append(time.perf_counter() - t0)
    err_rs = np.linalg.norm(m.to_dense() - w) / np.linalg.norm(w)
    print(f"tt-svd 4096x4096 (8,8,8,8)^2 D=16: tnml {median(t_rs):.3f} s, numpy {median(t_np):.3f} s, "
          f"ratio numpy / tnml = {median(t_np) / median(t_rs):.2f}x (tnml relative error {err_rs:.4f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tnml", default=os.environ.get("TNML_BIN", str(REPO / "target" / "release" / "tnml")))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if not os.access(a.tnml, os.X_OK):
        sys.exit(f"no tnml binary at {a.tnml}: cargo build --release -p tnml-cli, or pass --tnml")
    print(f"tnml {tnml.__version__}, numpy {np.__version__}, {os.cpu_count()} cpus")
    bench_tt_svd(a.repeats)
    bench_fit(a.tnml, a.repeats)


if __name__ == "__main__":
    main()
