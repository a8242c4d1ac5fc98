"""PyTorch reference for `cargo bench -p tnml-nn --bench mpo_vs_torch`.

The same MPO layer written the straightforward way (TensorNet / torch-mpo style: one reshape,
matmul and transpose per core, left to right), timed forward+backward on CPU with
torch.set_num_threads(THREADS), next to tltorch's tensor-train-matrix linear in both of its
implementations (factorized: contracted core by core; reconstructed: W rebuilt, then one GEMM) when
tltorch is installed, and nn.Linear; and one training epoch of FC2 (Adam, batch 100) in each of these forms.

usage: python mpo_torch.py THREADS layer IN_MODES OUT_MODES BOND BATCH REPS
       python mpo_torch.py THREADS epoch IMAGES.f32 LABELS.u8 N BOND sweep|tltorch-factorized|tltorch-reconstructed|dense
Prints one JSON line.
"""
import json
import sys
import time

import numpy as np
import torch


class MpoLinear(torch.nn.Module):
    def __init__(self, in_modes, out_modes, bond, seed=0):
        super().__init__()
        d = len(in_modes)
        ranks = [1] + [bond] * (d - 1) + [1]
        # clamp to the rank caps, as tnml does
        dims = [i * o for i, o in zip(in_modes, out_modes)]
        for k in range(1, d):
            ranks[k] = min(ranks[k], int(np.prod(dims[:k])), int(np.prod(dims[k:])))
        self.in_modes, self.out_modes, self.ranks = in_modes, out_modes, ranks
        n_in, n_out = int(np.prod(in_modes)), int(np.prod(out_modes))
        std = (2.0 / n_in) ** 0.5
        core_std = std ** (1.0 / d) * float(np.prod(ranks[1:-1])) ** (-1.0 / (2 * d))
        g = torch.Generator().manual_seed(seed)
        self.cores = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(ranks[k], in_modes[k], out_modes[k], ranks[k + 1], generator=g) * core_std)
             for k in range(d)])
        self.bias = torch.nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        b = x.shape[0]
        d = len(self.in_modes)
        # state: [B * prod out_<k, r_{k-1}, in_k, prod in_>k]
        t = x.reshape(b, 1, self.in_modes[0], -1)
        m_before = 1
        for k in range(d):
            r0, i, o, r1 = self.cores[k].shape
            rest = t.shape[-1]
            t = t.permute(0, 3, 1, 2).reshape(-1, r0 * i)          # [(P, rest), r0 i]
            t = t @ self.cores[k].reshape(r0 * i, o * r1)           # [(P, rest), o r1]
            t = t.reshape(b * m_before, rest, o, r1).permute(0, 2, 3, 1)  # [P, o, r1, rest]
            m_before *= o
            if k + 1 < d:
                t = t.reshape(b * m_before, r1, self.in_modes[k + 1], rest // self.in_modes[k + 1])
        return t.reshape(b, -1) + self.bias


def tltorch_layer(in_modes, out_modes, bond, implementation):
    """tltorch's tensor-train-matrix linear ("blocktt"), or None when tltorch is not installed."""
    try:
        import tltorch
    except ImportError:
        return None
    ranks = [1] + [bond] * (len(in_modes) - 1) + [1]
    return tltorch.FactorizedLinear(tuple(in_modes), tuple(out_modes), rank=ranks, factorization="blocktt",
                                    implementation=implementation)


def time_layer(in_modes, out_modes, bond, batch, reps):
    x = torch.randn(batch, int(np.prod(in_modes)))
    forms = {
        "mpo_s": MpoLinear(in_modes, out_modes, bond),
        "dense_s": torch.nn.Linear(int(np.prod(in_modes)), int(np.prod(out_modes))),
        "tltorch_factorized_s": tltorch_layer(in_modes, out_modes, bond, "factorized"),
        "tltorch_reconstructed_s": tltorch_layer(in_modes, out_modes, bond, "reconstructed"),
    }

    def run(f):
        for _ in range(2):
            f(x).sum().backward()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f(x).sum().backward()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    return {name: run(f) for name, f in forms.items() if f is not None}


def fc2(form, bond):
    """FC2 784 -> 256 -> 10 with Gao's MPO shapes (bond `bond`, then 4) in one of the forms."""
    if form == "dense":
        return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    if form == "sweep":
        first, second = MpoLinear([4, 7, 7, 4], [4, 4, 4, 4], bond), MpoLinear([4, 4, 4, 4], [1, 1, 10, 1], 4, seed=1)
    else:
        implementation = form.removeprefix("tltorch-")
        first = tltorch_layer([4, 7, 7, 4], [4, 4, 4, 4], bond, implementation)
        second = tltorch_layer([4, 4, 4, 4], [1, 1, 10, 1], 4, implementation)
        if first is None:
            return None
    return torch.nn.Sequential(first, torch.nn.ReLU(), second)


def epoch(images_path, labels_path, n, bond, form):
    x = torch.from_numpy(np.fromfile(images_path, dtype=np.float32).reshape(n, 784))
    y = torch.from_numpy(np.fromfile(labels_path, dtype=np.uint8).astype(np.int64))
    torch.manual_seed(0)
    model = fc2(form, bond)
    if model is None:
        return {"epoch_s": None}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(n)
    t0 = time.perf_counter()
    for s in range(0, n, 100):
        idx = perm[s:s + 100]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"epoch_s": time.perf_counter() - t0, "loss": loss.item()}


def main():
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    kind = sys.argv[2]
    if kind == "layer":
        ins = [int(v) for v in sys.argv[3].split(",")]
        outs = [int(v) for v in sys.argv[4].split(",")]
        out = time_layer(ins, outs, int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
    else:
        out = epoch(sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    out["torch"] = torch.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
