"""NumPy reference for the tnml-core benchmark (crates/tnml-core/benches/core_vs_numpy.rs).

The same three jobs, on the same matrices (read from raw little-endian f64 files written by the
Rust bench), with the same algorithms:
  1. TT-SVD of a 1024x1024 matrix into (4,4,4,4,4)x(4,4,4,4,4), at bond 12 and at full rank;
  2. the entanglement profile of that (full-rank) MPO: left-canonicalize by QR, then sweep right
     to left with one SVD per site;
  3. a truncated SVD of a 400x400 matrix (thin SVD, keep 100).
Prints one JSON object: median seconds per job, and the checks the Rust side compares against.
"""
import json
import sys
import time

import numpy as np


def tt_svd_mpo(w, in_modes, out_modes, max_bond):
    n = len(in_modes)
    t = w.reshape(list(out_modes) + list(in_modes))
    # group (in_k, out_k) per site, in_k major
    perm = [x for k in range(n) for x in (n + k, k)]
    t = t.transpose(perm)
    dims = [i * o for i, o in zip(in_modes, out_modes)]
    rem = t.reshape(-1)
    cores, r = [], 1
    right = rem.size
    discarded = 0.0
    for k in range(n - 1):
        right //= dims[k]
        m = rem.reshape(r * dims[k], right)
        u, s, vt = np.linalg.svd(m, full_matrices=False)
        tol = s[0] * np.finfo(float).eps * max(m.shape) if s.size else 0.0
        keep = min(int(np.sum(s > tol)), max_bond)
        keep = max(keep, 1)
        discarded += float(np.sum(s[keep:] ** 2))
        cores.append(u[:, :keep].reshape(r, dims[k], keep))
        rem = s[:keep, None] * vt[:keep]
        r = keep
    cores.append(rem.reshape(r, dims[-1], 1))
    return cores, discarded


def profile(cores):
    cores = [c.copy() for c in cores]
    n = len(cores)
    for k in range(n - 1):
        l, p, r = cores[k].shape
        q, rr = np.linalg.qr(cores[k].reshape(l * p, r))
        cores[k] = q.reshape(l, p, q.shape[1])
        cores[k + 1] = np.tensordot(rr, cores[k + 1], axes=(1, 0))
    entropies = [0.0] * (n - 1)
    for k in range(n - 1, 0, -1):
        l, p, r = cores[k].shape
        u, s, vt = np.linalg.svd(cores[k].reshape(l, p * r), full_matrices=False)
        cores[k] = vt.reshape(vt.shape[0], p, r)
        cores[k - 1] = np.tensordot(cores[k - 1], u * s, axes=(2, 0))
        pr = s ** 2 / np.sum(s ** 2)
        pr = pr[pr > 0]
        entropies[k - 1] = float(-np.sum(pr * np.log(pr)))
    return entropies


def truncated_svd(a, keep):
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    return u[:, :keep], s[:keep], vt[:keep], float(np.sum(s[keep:] ** 2) / np.sum(s ** 2))


def median_time(f, reps):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main():
    big_path, small_path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    w = np.fromfile(big_path, dtype="<f8").reshape(1024, 1024)
    a = np.fromfile(small_path, dtype="<f8").reshape(400, 400)
    modes = [4, 4, 4, 4, 4]
    full = 10 ** 9
    cores_full, _ = tt_svd_mpo(w, modes, modes, full)
    _, disc12 = tt_svd_mpo(w, modes, modes, 12)
    out = {
        "numpy": np.__version__,
        "tt_svd_bond12": median_time(lambda: tt_svd_mpo(w, modes, modes, 12), reps),
        "tt_svd_full": median_time(lambda: tt_svd_mpo(w, modes, modes, full), reps),
        "profile": median_time(lambda: profile(cores_full), reps),
        "truncated_svd_400": median_time(lambda: truncated_svd(a, 100), reps),
        "check_discarded_weight_bond12": disc12 / float(np.sum(w ** 2)),
        "check_entropies": profile(cores_full),
        "check_bond_dims_full": [c.shape[2] for c in cores_full[:-1]],
    }
    try:
        from threadpoolctl import threadpool_info

        out["blas"] = [
            {k: i.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for i in threadpool_info()
        ]
    except ImportError:
        pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
