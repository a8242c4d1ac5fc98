"""`tnml net export --format torch`: the state_dict a PyTorch user loads, checked with a NumPy
forward pass written from the file alone (no torch), against `tnml net predict`'s logits; the MPO
cores contracted in NumPy give the dense weight written next to them."""

import gzip
import subprocess

import numpy as np

import tnml

from conftest import REPO


def conv2d(x, w, b, pad):
    """(n, c, h, w) * (o, c, k, k) + b, stride 1, zero padding: torch.nn.Conv2d."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # n, c, H, W, k, k
    return np.einsum("nchwij,ocij->nohw", win, w) + b[None, :, None, None]


def maxpool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def lenet_forward(sd, x):
    relu = lambda v: np.maximum(v, 0.0)
    h = maxpool2(relu(conv2d(x, sd["conv1.weight"], sd["conv1.bias"], 2)))
    h = maxpool2(relu(conv2d(h, sd["conv2.weight"], sd["conv2.bias"], 0)))
    h = h.reshape(len(h), -1)  # (C, H, W) row-major, as torch.flatten
    for name in ["fc3", "fc4"]:
        h = relu(h @ sd[f"{name}.weight"].T + sd[f"{name}.bias"])
    return h @ sd["fc5.weight"].T + sd["fc5.bias"]


def cores_to_dense(cores):
    """W (out, in) from cores [left, in_k, out_k, right], input and output digits row-major."""
    t = np.ones((1, 1, 1))  # (in so far, out so far, bond)
    for c in cores:
        t = np.einsum("abl,lijr->aibjr", t, c)
        a, i, b, j, r = t.shape
        t = t.reshape(a * i, b * j, r)
    return t[:, :, 0].T


def test_exported_lenet_mpo_runs_in_numpy_with_the_same_logits(cli, tmp_path):
    run = tmp_path / "lenet"
    subprocess.run(
        [cli, "net", "train", "--model", "lenet5", "--mpo", "gao", "--epochs", "1",
         "--train-limit", "500", "--test-limit", "100", "--out", str(run)],
        check=True, capture_output=True,
    )
    exported = tmp_path / "lenet-torch.safetensors"
    subprocess.run([cli, "net", "export", "--format", "torch", "--checkpoint", str(run), "--out", str(exported)],
                   check=True, capture_output=True)
    pred = tmp_path / "p.csv"
    subprocess.run([cli, "net", "predict", "--checkpoint", str(run), "--limit", "40", "--out", str(pred)],
                   check=True, capture_output=True)
    sd, skipped = tnml._tnml.read_safetensors(str(exported))
    assert skipped == []
    assert sd["conv1.weight"].shape == (6, 1, 5, 5)
    assert sd["fc3.weight"].shape == (120, 400)
    for layer in ["fc3", "fc4", "fc5"]:
        cores = [sd[f"{layer}.cores.{k}"] for k in range(4)]
        np.testing.assert_allclose(cores_to_dense(cores), sd[f"{layer}.weight"], rtol=1e-5, atol=1e-6)
    table = np.loadtxt(pred, delimiter=",", skiprows=1)  # index, label, predicted, logit_0..9, p_0..9
    raw = gzip.open(REPO / "data/mnist-sample/t10k-images-idx3-ubyte.gz").read()
    x = np.frombuffer(raw, np.uint8, offset=16)[: 40 * 784].reshape(40, 1, 28, 28) / 255.0
    logits = lenet_forward(sd, x)
    np.testing.assert_allclose(logits, table[:, 3:13], rtol=1e-4, atol=1e-4)
    assert (logits.argmax(1) == table[:, 2]).all()
