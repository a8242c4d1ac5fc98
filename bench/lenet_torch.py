"""PyTorch reference for the LeNet-5 epoch of `cargo bench -p tnml-nn --bench mpo_vs_torch`.

The same LeNet-5 as tnml's (conv 1->6 5x5 pad 2, relu, maxpool 2, conv 6->16 5x5, relu, maxpool 2,
400 -> 120 -> 84 -> 10 with relu), one epoch of SGD with momentum 0.9 (lr 0.05, batch 100) on CPU
with torch.set_num_threads(THREADS). With `mpo` the three fully connected layers are tltorch
factorized linears in tensor-train-matrix form (`blocktt`) (Gao's shapes and bond), the peer of
tnml's `--mpo gao`.

usage: python lenet_torch.py THREADS IMAGES.f32 LABELS.u8 N dense|mpo [BOND]
Prints one JSON line.
"""
import json
import sys
import time

import numpy as np
import torch


def fully_connected(kind, bond):
    if kind == "dense":
        return [torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)]
    import tltorch

    shapes = [((2, 10, 10, 2), (2, 5, 6, 2)), ((2, 5, 6, 2), (2, 3, 7, 2)), ((2, 3, 7, 2), (1, 5, 2, 1))]
    # tnml's `--mpo gao --bond D`: bond D in the first two layers, 2 in the last
    return [
        tltorch.FactorizedLinear(ins, outs, rank=[1, d, d, d, 1], factorization="blocktt",
                                 implementation="factorized")
        for (ins, outs), d in zip(shapes, [bond, bond, 2])
    ]


def main():
    threads, images, labels, n, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    bond = int(sys.argv[6]) if len(sys.argv) > 6 else 4
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.from_numpy(np.fromfile(images, dtype=np.float32).reshape(n, 1, 28, 28))
    y = torch.from_numpy(np.fromfile(labels, dtype=np.uint8).astype(np.int64))
    fc3, fc4, fc5 = fully_connected(kind, bond)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), fc3, torch.nn.ReLU(), fc4, torch.nn.ReLU(), fc5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    perm = torch.randperm(n)
    t0 = time.perf_counter()
    for s in range(0, n, 100):
        idx = perm[s:s + 100]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = {"epoch_s": time.perf_counter() - t0, "loss": loss.item(), "torch": torch.__version__}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
