"""PyTorch reference for `cargo bench -p tnml-mps --bench gradient_vs_torch`.

The MPS classifier of Stoudenmire & Schwab trained by gradient descent the way the PyTorch peers
write it (TorchMPS, Efthymiou et al.): all sites of a minibatch contracted as batched matrix
products, autograd for the backward pass, Adam, cross-entropy on the outputs f^l(x).

Forms (argument FORM):
  tree   the transfer matrices M_k(x) = sum_s phi_s(x_k) A_k[:, s, :] of every site on each side
         of the label site are built in one einsum and multiplied pairwise in a product tree
         (TorchMPS' parallel_eval=True): ~log2(N) batched matmuls of (D x D) matrices,
         2 B N D^3 flops per forward pass.
  chain  from both ends towards the label site as batched vector-matrix products, one
         python-level step per site (TorchMPS' default, parallel_eval=False), each step one
         (B x D)(D x d D) matmul and the combination with phi: 2 B N d D^2 flops, the same
         algorithm as tnml's, but N small kernel launches with autograd.
Tree levels are rescaled per sample by their largest entry, chain vectors to unit norm every
8 sites; the logs of the scales are added back in float64 where the outputs are formed.

Starts from the model tnml wrote (the same near-identity start), trains EPOCHS epochs over the
training features tnml wrote, in the minibatches tnml's trainer draws (the order file), prints one JSON line with
images/s of training and the test accuracy after the last epoch.

usage: python mps_gradient_torch.py MANIFEST.json FORM THREADS EPOCHS
"""
import json
import math
import sys
import time

import numpy as np
import torch


def load(manifest):
    m = json.load(open(manifest))
    n, nt, sites, d = m["samples"], m["test_samples"], m["sites"], m["dim"]
    x = np.fromfile(m["features"], dtype="<f4").reshape(n, sites, d)
    y = np.fromfile(m["labels_file"], dtype="<u4").astype(np.int64)
    xt = np.fromfile(m["test_features"], dtype="<f4").reshape(nt, sites, d)
    yt = np.fromfile(m["test_labels_file"], dtype="<u4").astype(np.int64)
    flat = np.fromfile(m["model"], dtype="<f4")
    cores, off = [], 0
    for (l, p, r) in m["shapes"]:
        cores.append(flat[off:off + l * p * r].reshape(l, p, r))
        off += l * p * r
    return m, torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xt), torch.from_numpy(yt), cores


RESCALE_EVERY = 8


def rescale(v, logs):
    """Rows of v to unit norm, the log of the norms added to logs."""
    s = v.norm(dim=1, keepdim=True)
    return v / s, logs + torch.log(s[:, 0]).double()


class Mps(torch.nn.Module):
    """Sites 0..c-1 | label site c | sites c+1..N-1; interior cores stacked per side."""

    def __init__(self, cores, label_site, labels, d):
        super().__init__()
        c, n = label_site, len(cores)
        self.c, self.n, self.labels, self.d = c, n, labels, d
        t = [torch.tensor(a) for a in cores]
        # the first and last sites have a trivial outer bond: keep them as vectors
        self.first = torch.nn.Parameter(t[0][0])            # (d, D)
        self.last = torch.nn.Parameter(t[-1][:, :, 0])      # (D, d)
        self.left = torch.nn.Parameter(torch.stack(t[1:c]))  # (c-1, D, d, D)
        self.right = torch.nn.Parameter(torch.stack(t[c + 1:n - 1]))  # (n-c-2, D, d, D)
        lc, _, rc = cores[c].shape
        self.label = torch.nn.Parameter(t[c].reshape(lc, d, labels, rc))  # (D, d, L, D)

    @staticmethod
    def tree(m, logs):
        """Product of m[:, 0] @ m[:, 1] @ ... (B, n, D, D), rescaled per level."""
        while m.shape[1] > 1:
            odd = m[:, -1:] if m.shape[1] % 2 else None
            m = torch.matmul(m[:, 0:-1:2] if odd is not None else m[:, 0::2], m[:, 1::2])
            if odd is not None:
                m = torch.cat([m, odd], dim=1)
            s = m.abs().amax(dim=(1, 2, 3), keepdim=True)
            m = m / s
            logs = logs + torch.log(s.reshape(-1)).double()
        return m[:, 0], logs

    def forward_tree(self, phi):
        b, c = phi.shape[0], self.c
        logs = torch.zeros(b, dtype=torch.float64, device=phi.device)
        ml = torch.einsum("bns,nlsr->bnlr", phi[:, 1:c], self.left)
        pl, logs = self.tree(ml, logs)
        lvec = torch.einsum("bs,sr->br", phi[:, 0], self.first)
        lvec = torch.einsum("ba,bar->br", lvec, pl)
        mr = torch.einsum("bns,nlsr->bnlr", phi[:, c + 1:self.n - 1], self.right)
        pr, logs = self.tree(mr, logs)
        rvec = torch.einsum("bs,as->ba", phi[:, -1], self.last)
        rvec = torch.matmul(pr, rvec.unsqueeze(2))[:, :, 0]
        return self.output(lvec, phi[:, c], rvec, logs)

    def forward_chain(self, phi):
        b, c, d = phi.shape[0], self.c, self.d
        logs = torch.zeros(b, dtype=torch.float64, device=phi.device)
        v = torch.einsum("bs,sr->br", phi[:, 0], self.first)
        left = self.left.reshape(c - 1, self.left.shape[1], -1)  # (c-1, D, d D)
        for k in range(1, c):
            t = (v @ left[k - 1]).reshape(b, d, -1)
            v = torch.bmm(phi[:, k].unsqueeze(1), t)[:, 0]
            if k % RESCALE_EVERY == 0:
                v, logs = rescale(v, logs)
        w = torch.einsum("bs,as->ba", phi[:, -1], self.last)
        right = self.right.permute(0, 2, 3, 1).reshape(self.n - c - 2, -1, self.right.shape[1])  # (.., d D, D)
        for k in range(self.n - 2, c, -1):
            y = (phi[:, k].unsqueeze(2) * w.unsqueeze(1)).reshape(b, -1)
            w = y @ right[k - c - 1]
            if k % RESCALE_EVERY == 0:
                w, logs = rescale(w, logs)
        return self.output(v, phi[:, c], w, logs)

    def output(self, lvec, phic, rvec, logs):
        f = torch.einsum("ba,bs,asLr,br->bL", lvec, phic, self.label, rvec)
        return f.double() * torch.exp(logs).unsqueeze(1)


def main():
    manifest, form, threads, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m, x, y, xt, yt, cores = load(manifest)
    model = Mps(cores, m["label_site"], m["labels"], m["dim"])
    fwd = model.forward_tree if form == "tree" else model.forward_chain
    opt = torch.optim.Adam(model.parameters(), lr=m["lr"])
    batch, n = m["batch_size"], x.shape[0]
    train_seconds, losses = 0.0, []
    orders = torch.from_numpy(np.fromfile(m["order"], dtype="<u4").astype(np.int64)).reshape(epochs, n)
    for epoch in range(epochs):
        order = orders[epoch]
        t0 = time.perf_counter()
        total = 0.0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            f = fwd(x[idx])
            loss = torch.nn.functional.cross_entropy(f, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_seconds += time.perf_counter() - t0
        losses.append(total / n)
    with torch.no_grad():
        correct = sum(int((fwd(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum()) for i in range(0, len(yt), 1000))
    print(json.dumps({
        "form": form, "torch": torch.__version__, "threads": threads, "epochs": epochs,
        "images_per_second": epochs * n / train_seconds, "seconds": train_seconds,
        "loss": losses, "test_accuracy": correct / len(yt),
        "finite": all(math.isfinite(v) for v in losses),
    }))


if __name__ == "__main__":
    main()
