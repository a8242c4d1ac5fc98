"""Entanglement of every weight of a model, as one table."""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from . import _arrays, _tnml
from ._checks import _optional_flag
from .mpo import MPO


def _weights(weights: Any) -> dict[str, np.ndarray]:
    if isinstance(weights, (str, os.PathLike)):
        tensors, skipped = _tnml.read_safetensors(os.fspath(weights))
        for name, dtype in skipped:
            warnings.warn(f"{name}: dtype {dtype} is not a weight; skipped", stacklevel=3)
        return dict(tensors)
    if isinstance(weights, Mapping):
        return {str(k): _arrays.to_numpy(v) for k, v in weights.items()}
    raise TypeError(
        f"weights must be a dict of arrays (e.g. a state_dict) or a safetensors path, not {type(weights).__name__}"
    )


def entangle(
    weights: Any,
    modes: Mapping[str, tuple[Sequence[int], Sequence[int]]] | None = None,
    as_frame: bool | None = None,
    sites: int = 4,
):
    """Entanglement per bond of every weight with two or more dimensions.

    ``weights``: a dict of arrays (a PyTorch ``state_dict()``, tensors or ``.numpy()`` arrays) or
    the path of a safetensors file. A weight of shape ``(out, in)`` is the matrix ``W`` of
    ``y = W x``; a convolution ``(out, in, kh, kw)`` is read as ``out x (in kh kw)``. Each is made an
    exact MPO with ``modes[name] = (in_modes, out_modes)`` or, for a weight not in ``modes``, a
    balanced factorization (``tnml._tnml.default_layer_modes``: up to ``sites`` sites, 2 to 8, each
    dimension's prime factors spread evenly). Biases and other 1-D tensors are skipped; so are
    non-float tensors, and weights whose balanced split is lopsided (a 30522-word embedding is
    5087 x 3 x 2: the warning names the size to pad it to), with a warning.

    Returns one record per (weight, bond): ``layer, rows, cols, in_modes, out_modes, bond,
    bond_dim, left_dim, right_dim, entropy, renyi2, bound, normalized, spectrum, discarded_weight``
    (natural log;
    ``bound = ln min(bond_dim, left_dim, right_dim)``). A pandas DataFrame when pandas is installed
    (``as_frame=None``) or asked for (``as_frame=True``), else a list of dicts.
    """
    if isinstance(sites, bool) or not isinstance(sites, (int, np.integer)):
        raise TypeError(f"sites must be an integer, not {sites!r}")
    if not 2 <= sites <= 8:
        raise ValueError(f"sites={sites}: give 2 to 8 sites")
    as_frame = _optional_flag("as_frame", as_frame)
    tensors = _weights(weights)
    modes = dict(modes or {})
    unknown = sorted(set(modes) - set(tensors))
    if unknown:
        raise ValueError(f"modes given for {unknown}, which are not in the weights (they have: {sorted(tensors)})")
    records: list[dict] = []
    for name, t in tensors.items():
        if t.dtype.kind != "f":
            warnings.warn(f"{name}: dtype {t.dtype} is not a weight; skipped", stacklevel=2)
            continue
        if t.ndim < 2:
            if name in modes:
                raise ValueError(f"{name} has shape {t.shape}: modes apply to weights of 2 or more dimensions")
            continue
        rows, cols = t.shape[0], int(np.prod(t.shape[1:]))
        w = t.reshape(rows, cols)
        if name in modes:
            in_m, out_m = modes[name]
        else:
            try:
                in_m, out_m = _tnml.default_layer_modes(rows, cols, sites)
            except ValueError as e:
                warnings.warn(f"{name}: left out ({e}; give its modes)", stacklevel=2)
                continue
        try:
            mpo = MPO.from_dense(w, in_m, out_m)
        except (ValueError, TypeError) as e:
            raise type(e)(f"{name} (shape {tuple(t.shape)} read as {rows} x {cols}): {e}") from None
        for b in mpo.entanglement():
            records.append(
                {
                    "layer": name,
                    "rows": rows,
                    "cols": cols,
                    "in_modes": list(mpo.in_modes),
                    "out_modes": list(mpo.out_modes),
                    **b,
                }
            )
    if as_frame is False:
        return records
    try:
        import pandas as pd
    except ImportError:
        if as_frame:
            raise ImportError("as_frame=True needs pandas (pip install pandas)") from None
        return records
    return pd.DataFrame.from_records(records)
