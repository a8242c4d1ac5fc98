"""Input checks shared by the package: dtypes, shapes and values, with messages that name them."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(a: Any) -> np.ndarray:
    """An ndarray from a NumPy array, a PyTorch tensor (detached, on the CPU) or a nested list."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch.Tensor without importing torch
        a = a.detach().cpu()
        if str(getattr(a, "dtype", "")) == "torch.bfloat16":
            a = a.float()
        a = a.numpy()
    return np.asarray(a)


def float_array(a: Any, name: str, ndim: int | None, dtype: type) -> np.ndarray:
    """`a` as a C-ordered array of `dtype`; floats only (TypeError otherwise), finite values."""
    arr = to_numpy(a)
    if arr.dtype.kind != "f":
        hint = " (bytes 0..255: divide by 255)" if arr.dtype.kind in "iu" and name == "X" else ""
        raise TypeError(f"{name} has dtype {arr.dtype}: a float array is needed{hint}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} has shape {arr.shape}: {ndim} dimensions are needed")
    if arr.size == 0:
        raise ValueError(f"{name} has shape {arr.shape}: it is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}{list(idx)} is {arr[idx]}: every value must be finite")
    return np.ascontiguousarray(arr, dtype=dtype)


def pixels(X: Any) -> np.ndarray:
    """Images `(n, h*w)` as float32 in [0, 1]."""
    x = float_array(X, "X", 2, np.float64)
    out = (x < 0) | (x > 1)
    if out.any():
        r, c = (int(i) for i in np.argwhere(out)[0])
        raise ValueError(f"X[{r}, {c}] is {x[r, c]}: pixel values must lie in [0, 1]")
    return np.ascontiguousarray(x, dtype=np.float32)


def labels(y: Any, n: int, num_labels: int | None = None) -> np.ndarray:
    """Class labels `(n,)` as int64 in `0..num_labels`."""
    arr = to_numpy(y)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"y has dtype {arr.dtype}: integer class labels are needed")
    if arr.ndim != 1:
        raise ValueError(f"y has shape {arr.shape}: one label per image (1 dimension) is needed")
    if arr.shape[0] != n:
        raise ValueError(f"y has {arr.shape[0]} labels for {n} images")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        i = int(np.argmin(arr))
        raise ValueError(f"label {arr[i]} of sample {i} is negative: labels are 0..L-1")
    if num_labels is not None and arr.size and arr.max() >= num_labels:
        i = int(np.argmax(arr))
        raise ValueError(f"label {arr[i]} of sample {i} is outside 0..{num_labels}")
    return np.ascontiguousarray(arr)


def modes(m: Any, name: str) -> list[int]:
    """A list of positive mode sizes."""
    if isinstance(m, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of integers, got {m!r}")
    try:
        items = list(m)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive integers, got {m!r}") from None
    # 4.0 or True is not a mode: no silent conversion
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in items):
        raise TypeError(f"{name} must be a sequence of integers, got {m!r}")
    out = [int(v) for v in items]
    for k, v in enumerate(out):
        if v < 1:
            raise ValueError(f"{name}[{k}] is {v}: every mode must be at least 1")
    return out
