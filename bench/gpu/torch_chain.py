"""The PyTorch peer of tnml's GPU gradient trainer: a TorchMPS-style chain on one CUDA device.

The model and passes of ../mps_gradient_torch.py (form `chain`: one batched vector-matrix
product per site, autograd, Adam, cross-entropy), on full MNIST pooled to 14x14 (2x2 averages,
as tnml), linear feature map [1 - x, x], a near-identity start at the given bond, label site in
the middle. One warm-up pass of 20 batches (CUDA start-up, cuBLAS handles), then EPOCHS epochs
timed with the device synchronized; prints one JSON line per run.

usage: python torch_chain.py DATA_DIR BOND BATCH [EPOCHS] [DEVICE]
"""
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mps_gradient_torch import Mps  # noqa: E402


def idx_file(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def features(images):
    x = images.astype(np.float32) / 255.0
    x = x.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, 196)
    return np.stack([1.0 - x, x], axis=-1)  # (n, 196, 2)


def near_identity(sites, bond, label_site, labels, d, noise, rng):
    cores = []
    for k in range(sites):
        l = 1 if k == 0 else bond
        r = 1 if k == sites - 1 else bond
        p = d * labels if k == label_site else d
        a = np.zeros((l, p, r), dtype=np.float32)
        if l > 1 and r > 1:
            for i in range(bond):
                a[i, :, i] = 1.0
        else:  # a boundary site: delta with the bond's first index, as tnml's start
            a[0, :, 0] = 1.0
        cores.append(a + noise * (rng.random((l, p, r), dtype=np.float32) * 2 - 1))
    return cores


def main():
    data, bond, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    device = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cuda")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    m = os.path.join(data, "mnist")
    x = torch.from_numpy(features(idx_file(os.path.join(m, "train-images-idx3-ubyte.gz")))).to(device)
    y = torch.from_numpy(idx_file(os.path.join(m, "train-labels-idx1-ubyte.gz")).astype(np.int64)).to(device)
    xt = torch.from_numpy(features(idx_file(os.path.join(m, "t10k-images-idx3-ubyte.gz")))).to(device)
    yt = torch.from_numpy(idx_file(os.path.join(m, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)).to(device)
    sites, c = 196, 98
    model = Mps(near_identity(sites, bond, c, 10, 2, 1e-2, rng), c, 10, 2).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3 if bond <= 20 else 5e-4)
    n = x.shape[0]

    def step(idx):
        f = model.forward_chain(x[idx])
        loss = torch.nn.functional.cross_entropy(f, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    gen = torch.Generator(device="cpu").manual_seed(0)
    for i in range(20):  # warm-up
        step(torch.randint(0, n, (batch,), generator=gen).to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    losses, seconds = [], 0.0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(device)
        t0 = time.perf_counter()
        total = torch.zeros((), dtype=torch.float64, device=device)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            total += step(idx).detach().double() * len(idx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        losses.append(float(total) / n)
    with torch.no_grad():
        correct = sum(int((model.forward_chain(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum())
                      for i in range(0, len(yt), 1000))
    print(json.dumps({
        "peer": "torch chain", "torch": torch.__version__, "device": str(device), "bond": bond,
        "batch": batch, "epochs": epochs, "seconds_per_epoch": seconds / epochs,
        "images_per_second": epochs * n / seconds, "loss": losses,
        "test_accuracy": correct / len(yt), "finite": all(math.isfinite(v) for v in losses),
    }), flush=True)


if __name__ == "__main__":
    main()
