"""PyTorch <-> tnml, both ways, on full MNIST (needs torch and safetensors: bench/.venv).

1. A dense FC2 trained in PyTorch (1 epoch, Adam 1e-3, batch 100), saved with
   safetensors.torch.save_file, is read by `tnml net compress --from-torch`: tnml's accuracy of the
   imported dense model must equal PyTorch's, then TT-SVD compresses it.
2. A LeNet-5 with Gao's MPO layers and batch norm trained by tnml, exported with
   `tnml net export --format torch`, loaded strictly into the equivalent nn.Sequential: its logits
   against `tnml net predict`'s.

usage: python bench/torch_interop.py --tnml target/release/tnml --data-dir ../shared/data --work /tmp/interop
"""

import argparse
import gzip
import os
import re
import subprocess
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file


def idx(path):
    raw = gzip.open(path).read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist(data_dir, split):
    d = os.path.join(data_dir, "mnist")
    p = "train" if split == "train" else "t10k"
    x = idx(os.path.join(d, f"{p}-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = idx(os.path.join(d, f"{p}-labels-idx1-ubyte.gz")).astype(np.int64)
    return torch.tensor(x).unsqueeze(1), torch.tensor(y)


def fc2():
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(784, 256)), ("relu1", nn.ReLU()), ("fc2", nn.Linear(256, 10)),
    ]))


def lenet5_bn():
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 6, 5, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc3", nn.Linear(400, 120)), ("norm3", nn.BatchNorm1d(120)), ("relu3", nn.ReLU()),
        ("fc4", nn.Linear(120, 84)), ("norm4", nn.BatchNorm1d(84)), ("relu4", nn.ReLU()),
        ("fc5", nn.Linear(84, 10)),
    ]))


def run(cmd):
    print("$", " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tnml", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x, y = mnist(a.data_dir, "train")
    xt, yt = mnist(a.data_dir, "test")

    # 1. PyTorch -> tnml
    model = fc2()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 100):
        b = perm[i : i + 100]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[b]), y[b]).backward()
        opt.step()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    path = os.path.join(a.work, "fc2-torch.safetensors")
    save_file(model.state_dict(), path)
    print(f"PyTorch FC2 after 1 epoch: test accuracy {100 * acc:.2f}%, saved {path}")
    out = run([a.tnml, "net", "compress", "--from-torch", path, "--model", "fc2", "--max-bond", "16",
               "--dataset", "mnist", "--data-dir", a.data_dir, "--out", os.path.join(a.work, "compress")])
    dense = float(re.search(r"dense model: test accuracy ([0-9.]+)%", out).group(1))
    after = float(re.search(r"after TT-SVD: test accuracy ([0-9.]+)%", out).group(1))
    print(f"tnml reads it: dense test accuracy {dense:.2f}% (PyTorch {100 * acc:.2f}%), "
          f"after TT-SVD to Gao's modes at D <= 16: {after:.2f}%")

    # 2. tnml -> PyTorch
    run_dir = os.path.join(a.work, "lenet")
    run([a.tnml, "net", "train", "--model", "lenet5", "--mpo", "gao", "--norm", "batch", "--epochs", "1",
         "--dataset", "mnist", "--data-dir", a.data_dir, "--out", run_dir])
    exported = os.path.join(a.work, "lenet-torch.safetensors")
    run([a.tnml, "net", "export", "--format", "torch", "--checkpoint", run_dir, "--out", exported])
    pred = os.path.join(a.work, "lenet-pred.safetensors")
    run([a.tnml, "net", "predict", "--checkpoint", run_dir, "--dataset", "mnist", "--data-dir", a.data_dir,
         "--out", pred])
    net = lenet5_bn()
    net.load_state_dict({k: v for k, v in load_file(exported).items() if ".cores." not in k})
    net.eval()
    p = load_file(pred)
    with torch.no_grad():
        z = net(xt)
    diff = (z - p["logits"]).abs().max().item()
    agree = (z.argmax(1) == p["predicted"]).float().mean().item()
    tacc = (z.argmax(1) == yt).float().mean().item()
    print(f"tnml LeNet-5-MPO in PyTorch: max |logit difference| {diff:.2e} over {len(yt)} images, "
          f"predictions agree {100 * agree:.2f}%, PyTorch test accuracy {100 * tacc:.2f}%")


if __name__ == "__main__":
    main()
