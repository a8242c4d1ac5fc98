"""NumPy reference of one full sweep of the MPS classifier (crates/tnml-mps/benches/sweep_vs_numpy.rs).

The same algorithm as tnml's `train_sweeps` with refit off and the sweep starting at site 0:
two-site bond tensor, CGLS with exact line searches on the projected inputs, truncated SVD with
the label moving, per-sample normalized environments. Written the straightforward vectorized
way (float32, every per-sample contraction a BLAS matmul over the batch), not as Python loops.

Usage: mps_sweep_numpy.py MANIFEST.json  -> prints JSON {seconds, train_error, cost, bond_dims}
"""
import json
import sys
import time

import numpy as np


def normalize(v):
    n = np.linalg.norm(v, axis=1, keepdims=True)
    n[n == 0] = 1
    return v / n


def cgls(apply, adjoint, b, y, passes):
    r = y - apply(b)
    s = adjoint(r)
    p = s.copy()
    gamma = float(np.vdot(s, s))
    for i in range(passes):
        if gamma == 0:
            break
        q = apply(p)
        delta = float(np.vdot(q, q))
        if delta <= 0:
            break
        alpha = np.float32(gamma / delta)
        b = b + alpha * p
        r = r - alpha * q
        if i + 1 == passes:
            break
        s = adjoint(r)
        g2 = float(np.vdot(s, s))
        p = s + np.float32(g2 / gamma) * p
        gamma = g2
    return b, r


def truncate(s, max_bond, cutoff, m, n):
    total = float(np.sum(s.astype(np.float64) ** 2))
    tol = s[0] * np.finfo(float).eps * max(m, n) if s.size else 0.0
    rank = int(np.sum(s > tol))
    k = len(s)
    tail = 0.0
    while k > 0:
        nxt = tail + float(s[k - 1]) ** 2
        if nxt > cutoff * total:
            break
        tail = nxt
        k -= 1
    return max(1, min(k, rank, max_bond))


def sweep(sites, feats, labels, L, max_bond, cutoff, passes):
    N = len(sites)
    n, d = feats[0].shape
    y = np.zeros((n, L), np.float32)
    y[np.arange(n), labels] = 1
    envs = [None] * (N + 1)
    envs[0] = np.ones((n, 1), np.float32)
    envs[N] = np.ones((n, 1), np.float32)
    for k in range(N - 1, 1, -1):
        a = sites[k]  # [l, d, r]
        w = envs[k + 1] @ a.reshape(-1, a.shape[2]).T  # n x (l d)
        envs[k] = normalize(np.einsum("nls,ns->nl", w.reshape(n, a.shape[0], d), feats[k]))
    label_site = 0
    last = None
    order = [(j, "LR") for j in range(N - 1)] + [(j, "RL") for j in reversed(range(N - 1))]
    for j, direction in order:
        l, r = envs[j], envs[j + 2]
        aj, ak = sites[j], sites[j + 1]
        left, right = aj.shape[0], ak.shape[-1]
        if direction == "LR":  # label on j: [a, s, L, c] x [c, t, b] -> [a, s, t, L, b]
            b0 = np.einsum("aslc,ctb->astlb", aj.reshape(left, d, L, -1), ak)
        else:  # label on j+1: [a, s, c] x [c, t, L, b]
            b0 = np.einsum("asc,ctlb->astlb", aj, ak.reshape(-1, d, L, right))
        x = (l[:, :, None, None] * feats[j][:, None, :, None] * feats[j + 1][:, None, None, :]).reshape(n, -1)
        K = x.shape[1]

        def apply(p):
            t = (x @ p.reshape(K, L * right)).reshape(n, L, right)
            return np.einsum("nlb,nb->nl", t, r)

        def adjoint(e):
            z = (e[:, :, None] * r[:, None, :]).reshape(n, L * right)
            return (x.T @ z).reshape(b0.shape)

        b, res = cgls(apply, adjoint, b0.astype(np.float32), y, passes)
        f = y - res
        last = (0.5 * float(np.sum(res.astype(np.float64) ** 2)) / n, float(np.mean(np.argmax(np.abs(f), 1) != labels)))
        if direction == "LR":
            m = b.reshape(left * d, d * L * right).astype(np.float64)
        else:
            m = b.transpose(0, 1, 3, 2, 4).reshape(left * d * L, d * right).astype(np.float64)
        u, s, vt = np.linalg.svd(m, full_matrices=False)
        k = truncate(s, max_bond, cutoff, *m.shape)
        u, s, vt = u[:, :k], s[:k], vt[:k]
        if direction == "LR":
            sites[j] = u.reshape(left, d, k).astype(np.float32)
            sites[j + 1] = (s[:, None] * vt).reshape(k, d * L, right).astype(np.float32)
            envs[j + 1] = normalize(np.einsum("nas,asc->nc", l[:, :, None] * feats[j][:, None, :], sites[j]))
        else:
            sites[j] = (u * s).reshape(left, d * L, k).astype(np.float32)
            sites[j + 1] = vt.reshape(k, d, right).astype(np.float32)
            w = r @ sites[j + 1].reshape(k * d, right).T
            envs[j + 1] = normalize(np.einsum("nct,nt->nc", w.reshape(n, k, d), feats[j + 1]))
    return last, [s.shape[-1] for s in sites[:-1]]


def main():
    man = json.load(open(sys.argv[1]))
    n, N, d, L = man["samples"], man["sites"], man["dim"], man["labels"]
    feats = np.fromfile(man["features"], dtype="<f4").reshape(N, n, d)
    labels = np.fromfile(man["labels_file"], dtype="<u4").astype(np.int64)
    raw = np.fromfile(man["model"], dtype="<f4")
    sites, off = [], 0
    for shape in man["shapes"]:
        size = int(np.prod(shape))
        sites.append(raw[off : off + size].reshape(shape))
        off += size
    t0 = time.perf_counter()
    (cost, err), dims = sweep(sites, list(feats), labels, L, man["max_bond"], man["cutoff"], man["cg_passes"])
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "cost": cost, "train_error": err, "max_bond_dim": max(dims), "numpy": np.__version__}))


if __name__ == "__main__":
    main()
