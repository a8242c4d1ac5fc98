"""Thread scaling of every trainer, tnml next to PyTorch CPU at the same thread counts, in one run.

For each thread count T (default 1, 2, 4, ... up to the cores present, and the core count) the
script runs, as separate processes so that each gets its own thread pool:

  tnml  mps train (sweep)     one sweep, bond 20, the README's options       seconds of the sweep
  tnml  mps train (gradient)  one epoch, bond 20, batch 100, linear map      seconds of the epoch
  tnml  the same at bond 120 on the first 10,000 training images
  tnml  net train fc2         one epoch, Adam 1e-3, batch 100                 train seconds
  tnml  net train fc2 --mpo gao --bond 16                                      train seconds
  tnml  net train lenet5      one epoch, SGD 0.05 momentum 0.9, batch 100      train seconds
  tnml  the same LeNet-5 and FC2 with --shard-rows 50 (data-parallel shards of 50 images)
  torch FC2 dense, FC2 tltorch (if installed), LeNet-5 dense, one epoch each  (bench/mpo_torch.py,
        bench/lenet_torch.py with torch.set_num_threads(T))

and prints a table: seconds per work and thread count, each tnml row's speed-up over its own
first thread count, and tnml / PyTorch at each count. Times are the programs' own (training only:
loading and evaluation are left out on both sides).

A second table gives the model of each tnml row (see `model_row`): flops and bytes moved per
batch (per sweep for the sweep trainer) as functions of bond, batch and threads, the rate
reached, and the speed-up the model predicts at each thread count and at 16 threads, next to
the measured one. For the gradient trainer the model is structural (the batch's blocks, fixed by
its size, share the chains; the gradient products and Adam split by site); for the others it is
Amdahl's law with the serial fraction measured from the first two thread counts (Karp-Flatt).

    bench/.venv/bin/python bench/thread_scaling.py                        # the shipped sample
    bench/.venv/bin/python bench/thread_scaling.py --data-dir ../shared/data --dataset mnist --threads 1,2 --repeat 3

With --repeat N every entry is the fastest of N runs (the rounds go through every thread count
in turn, so a slow spell of a shared machine does not hit one count only).

Needs numpy and torch in the interpreter that runs it (bench/setup_python.sh, then pip install
torch; tltorch optional) and a release build of tnml (--tnml, default target/release/tnml or
$TNML_BIN). Writes only under a temporary directory.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def default_threads() -> list[int]:
    cores = os.cpu_count() or 1
    counts, t = [], 1
    while t < cores:
        counts.append(t)
        t *= 2
    return counts + [cores]


def run(cmd: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return out.stdout


def records(run_dir: pathlib.Path) -> list[dict]:
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]


class Tnml:
    """The tnml workloads at one data set."""

    def __init__(self, binary: str, data: list[str], work: pathlib.Path, train_limit: int | None):
        self.binary, self.data, self.work = binary, data, work
        self.limit = ["--train-limit", str(train_limit)] if train_limit else []
        self.count = 0

    def _out(self) -> pathlib.Path:
        self.count += 1
        return self.work / f"run{self.count}"

    def mps_sweep(self, threads: int) -> float:
        out = self._out()
        run([self.binary, "mps", "train", *self.data, *self.limit, "--max-bond", "20", "--sweeps", "1",
             "--loss", "cross-entropy", "--lambda", "0.5", "--test-limit", "100", "--threads", str(threads),
             "--out", str(out)], os.environ.copy())
        return records(out)[0]["seconds"]

    def mps_gradient(self, threads: int, bond: int = 20, limit: int | None = None) -> float:
        out = self._out()
        lim = ["--train-limit", str(limit)] if limit else self.limit
        run([self.binary, "mps", "train", *self.data, *lim, "--trainer", "gradient", "--feature-map", "linear",
             "--max-bond", str(bond), "--epochs", "1", "--batch-size", "100", "--test-limit", "100",
             "--threads", str(threads), "--out", str(out)], os.environ.copy())
        return records(out)[0]["seconds"]

    def net(self, threads: int, model: str, extra: list[str]) -> float:
        out = self._out()
        run([self.binary, "net", "train", *self.data, *self.limit, "--model", model, "--epochs", "1",
             "--batch-size", "100", "--test-limit", "100", *extra, "--threads", str(threads), "--out", str(out)],
            os.environ.copy())
        return records(out)[0]["train_seconds"]


def idx_images(path: pathlib.Path) -> np.ndarray:
    data = gzip.open(path).read()
    n, h, w = (int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(3))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h * w)


def idx_labels(path: pathlib.Path) -> np.ndarray:
    return np.frombuffer(gzip.open(path).read(), dtype=np.uint8, offset=8)


def torch_inputs(data_dir: pathlib.Path, work: pathlib.Path, limit: int | None) -> tuple[str, str, int]:
    """The training images as the PyTorch scripts read them: f32 in [0, 1] and u8 labels."""
    x = idx_images(data_dir / "train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx_labels(data_dir / "train-labels-idx1-ubyte.gz")
    n = min(limit or len(y), len(y))
    images, labels = work / "images.f32", work / "labels.u8"
    x[:n].tofile(images)
    y[:n].tofile(labels)
    return str(images), str(labels), n


def torch_seconds(script: str, args: list[str]) -> float:
    out = run([sys.executable, str(REPO / "bench" / script), *args], os.environ.copy())
    rec = json.loads(out.strip().splitlines()[-1])
    for key in ("epoch_s", "seconds"):
        if rec.get(key) is not None:
            return float(rec[key])
    sys.exit(f"{script}: no time in {rec}")


# The models (per batch of B = 100; MNIST at 14 x 14 for the MPS: N = 196 sites, d = 2, L = 10).
BATCH, SITES, DIM, LABELS, BLOCK_ROWS = 100, 196, 2, 10, 12


def gradient_blocks(batch: int) -> int:
    """Blocks of a batch in the gradient trainer (`tnml_mps::gradient::block_ranges`)."""
    k = 1
    while 2 * k * BLOCK_ROWS <= batch:
        k *= 2
    return k


def gradient_model(bond: int, threads: int) -> dict:
    """The gradient trainer per batch: P = (N + L - 1) d D^2 weights (the label site holds L
    times a site's), flops 6 B P (three GEMMs a site: left/right chains and carries on the blocks,
    the gradient product over the whole batch), bytes (as the Rust bench gradient_vs_torch
    counts them): every block reads the f32 cores twice (8 K P), the partial contractions and
    gradient factors are written and read (~20 B N D (1 + d)), Adam reads w, m, v and writes m,
    v, the new weights and their f32 image (52 P) -- none of it grows with the threads. Speed-up at T threads: the chains (4/6 of the
    flops) run on min(T, K) blocks (the slowest thread takes ceil(K / T) of them), the products
    and Adam (2/6) split by site over all T."""
    k = gradient_blocks(BATCH)
    p = (SITES + LABELS - 1) * DIM * bond * bond
    flops = 6 * BATCH * p
    bytes_ = 8 * k * p + 52 * p + 20 * BATCH * SITES * bond * (1 + DIM)
    speed = 1.0 / ((4 / 6) * -(-k // threads) / k + (2 / 6) / threads)
    return {"flops": flops, "bytes": bytes_, "speed": speed, "tasks": f"{k} blocks, then {SITES} sites"}


def amdahl(serial: float, threads: int) -> float:
    return 1.0 / (serial + (1.0 - serial) / threads)


def karp_flatt(t1: float, t2: float) -> float:
    """Serial fraction e from the times at 1 and 2 threads: 1/S = e + (1 - e)/2, at least 0."""
    return max(0.0, 2.0 * t2 / t1 - 1.0)


# flops of one training step per image (forward, weight and input gradients) and the bytes of
# weights a step reads and writes (f32 weights, gradients, Adam's two moments)
NET_WORK = {
    # fc1 784x256 (no input gradient: 2 GEMMs), fc2 256x10 (3 GEMMs)
    "FC2 dense": (2 * (2 * 784 * 256 + 3 * 256 * 10), 203_264),
    # at batch 100 the layer rebuilds W from the halves and runs the dense product: counted as
    # FC2 dense's flops (the rebuild adds under 10%); 13k MPO weights
    "FC2-MPO D=16": (2 * (2 * 784 * 256 + 3 * 256 * 10), 13_000),
    # conv1 28x28x6x25 (no input gradient), conv2 10x10x16x150, fc 400-120-84-10
    "LeNet-5 dense": (2 * (2 * 117_600 + 3 * 240_000 + 3 * 58_920), 61_706),
}


def print_models(rows: dict[str, dict[int, float]], threads: list[int], limit: int | None) -> None:
    """The model table (see the module docs); predictions are the model's, not measurements."""
    images = min(limit or 60_000, 60_000)
    t_all = sorted(set(threads) | {16})
    head = " | ".join(f"{t} thr" for t in t_all)
    print(f"| tnml work (model) | tasks per batch | GFLOP / batch | MB moved / batch | GFLOP/s at {threads[0]}, {threads[-1]} thr | model speed-up at {head} | measured speed-up {threads[0]} -> {threads[-1]} |")
    print("|---|---|---:|---:|---|" + "---:|" * len(t_all) + "---:|")
    for name, by in rows.items():
        if not name.startswith("tnml") or len(by) < 1:
            continue
        t1, tn = by[threads[0]], by[threads[-1]]
        measured = f"{t1 / tn:.2f}x"
        if "gradient" in name:
            bond = 120 if "bond 120" in name else 20
            n_img = min(images, 10_000) if bond == 120 else images
            batches = n_img / BATCH
            m = {t: gradient_model(bond, t) for t in t_all}
            base = m[threads[0]]["speed"]
            preds = " | ".join(f"{m[t]['speed'] / base:.2f}x" for t in t_all)
            rate = ", ".join(f"{m[1]['flops'] * batches / by[t] / 1e9:.1f}" for t in (threads[0], threads[-1]))
            print(f"| {name} | {m[1]['tasks']} | {m[1]['flops'] / 1e9:.3f} | {m[1]['bytes'] / 1e6:.1f} | {rate} | {preds} | {measured} |")
            continue
        if len(threads) < 2 or threads[0] != 1 or threads[1] != 2:
            continue
        serial = karp_flatt(by[1], by[2])
        preds = " | ".join(f"{amdahl(serial, t):.2f}x" for t in t_all)
        work = next((w for key, w in NET_WORK.items() if name.startswith("tnml " + key)), None)
        if work is None:
            # the sweep: its flops are the trainer's own count (metrics "gflops" x seconds)
            print(f"| {name} | blocks of 1,024 images | - | - | - | {preds} | {measured} (serial fraction {serial:.3f}) |")
            continue
        per_image, weights = work
        flops = per_image * BATCH
        bytes_ = 4 * weights * 6 + 4 * BATCH * 784 * 2
        rate = ", ".join(f"{flops * images / BATCH / by[t] / 1e9:.1f}" for t in (threads[0], threads[-1]))
        tasks = "2 shards of 50 images" if "shard-rows" in name else "one pass, threads inside each op"
        print(f"| {name} | {tasks} | {flops / 1e9:.3f} | {bytes_ / 1e6:.1f} | {rate} | {preds} | {measured} (serial fraction {serial:.3f}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tnml", default=os.environ.get("TNML_BIN", str(REPO / "target" / "release" / "tnml")))
    ap.add_argument("--threads", default=",".join(map(str, default_threads())))
    ap.add_argument("--dataset", default="mnist-sample")
    ap.add_argument("--data-dir", default=None, help="folder holding the data set's folder (default: the shipped sample)")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="runs per entry; the fastest is kept")
    a = ap.parse_args()
    if a.repeat < 1:
        sys.exit(f"--repeat {a.repeat}: at least 1")
    threads = [int(t) for t in a.threads.split(",")]
    if not threads or min(threads) < 1:
        sys.exit(f"--threads {a.threads}: positive integers")
    data = ["--dataset", a.dataset] + (["--data-dir", a.data_dir] if a.data_dir else [])
    idx_dir = REPO / "data" / "mnist-sample"
    if a.data_dir:
        candidates = [pathlib.Path(a.data_dir), pathlib.Path(a.data_dir) / a.dataset]
        idx_dir = next((c for c in candidates if (c / "train-images-idx3-ubyte.gz").exists()), candidates[-1])
    rows: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        t = Tnml(a.tnml, data, work, a.train_limit)
        torch = None
        if not a.no_torch:
            try:
                import torch as _torch  # noqa: F401

                torch = torch_inputs(idx_dir, work, a.train_limit)
            except ImportError:
                print("(no torch in this interpreter: PyTorch rows left out)", file=sys.stderr)
        has_tltorch = False
        try:
            import tltorch  # noqa: F401

            has_tltorch = True
        except ImportError:
            pass
        def keep(name: str, n: int, seconds: float) -> None:
            by = rows.setdefault(name, {})
            by[n] = min(by.get(n, seconds), seconds)

        for n in [n for _ in range(a.repeat) for n in threads]:
            print(f"{n} thread(s) ...", file=sys.stderr)
            keep("tnml MPS sweep, bond 20", n, t.mps_sweep(n))
            keep("tnml MPS gradient, bond 20", n, t.mps_gradient(n))
            keep("tnml MPS gradient, bond 120, 10,000 images", n, t.mps_gradient(n, 120, min(10_000, a.train_limit or 10_000)))
            keep("tnml FC2 dense", n, t.net(n, "fc2", ["--optimizer", "adam", "--lr", "1e-3"]))
            keep("tnml FC2-MPO D=16", n, t.net(n, "fc2", ["--optimizer", "adam", "--lr", "1e-3", "--mpo", "gao", "--bond", "16"]))
            keep("tnml LeNet-5 dense", n, t.net(n, "lenet5", ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"]))
            keep("tnml LeNet-5 dense, --shard-rows 50", n, t.net(n, "lenet5", ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--shard-rows", "50"]))
            keep("tnml FC2 dense, --shard-rows 50", n, t.net(n, "fc2", ["--optimizer", "adam", "--lr", "1e-3", "--shard-rows", "50"]))
            if torch:
                images, labels, count = torch
                keep("torch FC2 dense", n, torch_seconds("mpo_torch.py", [str(n), "epoch", images, labels, str(count), "16", "dense"]))
                if has_tltorch:
                    keep("torch FC2 tltorch D=16", n, torch_seconds("mpo_torch.py", [str(n), "epoch", images, labels, str(count), "16", "tltorch-factorized"]))
                keep("torch LeNet-5 dense", n, torch_seconds("lenet_torch.py", [str(n), images, labels, str(count), "dense"]))
    peers = {
        "tnml FC2 dense": "torch FC2 dense",
        "tnml FC2 dense, --shard-rows 50": "torch FC2 dense",
        "tnml FC2-MPO D=16": "torch FC2 tltorch D=16",
        "tnml LeNet-5 dense": "torch LeNet-5 dense",
        "tnml LeNet-5 dense, --shard-rows 50": "torch LeNet-5 dense",
    }
    head = " | ".join(f"{n} thr" for n in threads)
    print(f"| work ({a.dataset}) | {head} | speed-up {threads[0]} -> {threads[-1]} | tnml / torch time at " + ", ".join(map(str, threads)) + " |")
    print("|---|" + "---:|" * len(threads) + "---:|---|")
    for name, by in rows.items():
        times = " | ".join(f"{by[n]:.2f} s" for n in threads)
        speed = f"{by[threads[0]] / by[threads[-1]]:.2f}x"
        peer = rows.get(peers.get(name, ""), {})
        ratio = ", ".join(f"{by[n] / peer[n]:.2f}" for n in threads) if peer else "-"
        print(f"| {name} | {times} | {speed} | {ratio} |")
    print()
    print_models(rows, threads, a.train_limit)


if __name__ == "__main__":
    main()
