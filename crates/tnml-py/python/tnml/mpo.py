"""Matrix product operators (tensor-train matrices) for dense weights."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _arrays, _tnml
from ._checks import _optional_count, _optional_real


class MPO:
    """A matrix product operator: cores ``[left, in, out, right]``, boundary bonds 1.

    The dense matrix is ``(prod(out_modes), prod(in_modes))``, as ``nn.Linear.weight`` (``y = W x``),
    with row index ``(out_0, .., out_{N-1})`` and column index ``(in_0, .., in_{N-1})``, both in C order.
    Site k carries the pair ``(in_k, out_k)``. Build one with :meth:`from_dense` (TT-SVD) or
    :meth:`from_cores`.
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: _tnml.MPO):
        self._inner = inner

    @classmethod
    def from_dense(
        cls,
        w: Any,
        in_modes: Sequence[int],
        out_modes: Sequence[int],
        max_bond: int | None = None,
        cutoff: float | None = None,
    ) -> "MPO":
        """TT-SVD of ``w`` (shape ``(prod(out_modes), prod(in_modes))``; NumPy or PyTorch, any float dtype).

        ``max_bond`` caps every bond, ``cutoff`` bounds the relative discarded weight
        ``sum dropped s^2 / sum s^2`` of each SVD; with neither the decomposition is exact (to rounding).
        What was dropped is in :attr:`discarded`. A truncated decomposition sweeps right to left (the
        last bond first), as :meth:`truncate` and the CLI do, so one cap gives one MPO whichever path
        made it. Cost: the first SVD dominates, ``O((in_last out_last)^2 rows cols)``.
        """
        m = _arrays.float_array(w, "w", 2, np.float64)
        return cls(
            _tnml.MPO.from_dense(
                m,
                _arrays.modes(in_modes, "in_modes"),
                _arrays.modes(out_modes, "out_modes"),
                _optional_count("max_bond", max_bond, 1),
                _optional_real("cutoff", cutoff),
            )
        )

    @classmethod
    def from_cores(cls, cores: Sequence[Any]) -> "MPO":
        """An MPO from its cores, each ``[left, in, out, right]``."""
        return cls(_tnml.MPO.from_cores([_arrays.float_array(c, f"cores[{k}]", 4, np.float64) for k, c in enumerate(cores)]))

    @property
    def cores(self) -> list[np.ndarray]:
        """The cores ``[left, in, out, right]`` (float64 copies)."""
        return self._inner.cores

    @property
    def in_modes(self) -> list[int]:
        return self._inner.in_modes

    @property
    def out_modes(self) -> list[int]:
        return self._inner.out_modes

    @property
    def bond_dims(self) -> list[int]:
        """Bond dimensions, bond 1 (between sites 0 and 1) first."""
        return self._inner.bond_dims

    @property
    def num_params(self) -> int:
        """Entries of all cores."""
        return self._inner.num_params

    @property
    def shape(self) -> tuple[int, int]:
        """``(prod(out_modes), prod(in_modes))``."""
        return self._inner.dense_shape

    @property
    def compression(self) -> float:
        """rho = MPO parameters / dense parameters (Gao et al. 2020); its inverse is the compression factor."""
        return self._inner.compression

    @property
    def discarded(self) -> list[dict]:
        """Per bond, what the last truncation dropped: ``bond, kept, full_rank``, ``discarded_weight``
        (relative to the squared norm at that split) and ``discarded_fraction`` (relative to the squared
        norm before truncating: they add up to the squared relative Frobenius error)."""
        return self._inner.discarded

    def norm(self) -> float:
        """Frobenius norm of the dense matrix."""
        return self._inner.norm()

    def to_dense(self) -> np.ndarray:
        """The dense matrix ``(prod(out_modes), prod(in_modes))``, float64."""
        return self._inner.to_dense()

    def truncate(self, max_bond: int | None = None, cutoff: float | None = None) -> list[dict]:
        """Truncates in place (canonical form, then one SVD per bond); returns per bond what it dropped.

        The ``discarded_fraction`` entries add up to ``||W - W~||^2 / ||W||^2`` (the dropped pieces of
        a canonical-form sweep are orthogonal); ``discarded_weight`` is each split's own fraction.
        """
        return self._inner.truncate(_optional_count("max_bond", max_bond, 1), _optional_real("cutoff", cutoff))

    def entanglement(self) -> list[dict]:
        """Per bond: ``entropy`` (von Neumann, natural log), ``renyi2``, ``bound`` =
        ``ln min(bond_dim, left_dim, right_dim)``, ``normalized`` = entropy / bound, ``spectrum``
        (Schmidt values of ``W / ||W||``, ``sum s^2 = 1``) and ``discarded_weight`` (entry ``D-1``:
        the weight a truncation of this bond to ``D`` values would drop).
        """
        return self._inner.entanglement()

    def __len__(self) -> int:
        return len(self._inner)

    def __repr__(self) -> str:
        return repr(self._inner)


def read_mpos(path: Any) -> dict[str, MPO]:
    """The MPOs of an MPO file, by name: ``tnml mpo compress``'s ``mpo.safetensors`` (older files
    with cores ``core.000, ...`` read under the name ``"mpo"``), or the MPO layers of a network's
    ``model.safetensors`` (``<layer>.cores.<k>``). Raises ``OSError`` for an unreadable file and
    ``ValueError`` (naming the file and the tensor) for one that holds no valid MPO."""
    import os

    return {name: MPO(inner) for name, inner in _tnml.read_mpo_file(os.fspath(path))}


def save_mpos(path: Any, mpos: dict[str, MPO], overwrite: bool = False) -> None:
    """Writes ``mpos`` (name -> :class:`MPO`) as an MPO file in the format ``tnml mpo compress``
    writes (cores ``<name>.cores.<k>`` in float64), whole: to a temporary file next to ``path``,
    then renamed. An existing ``path`` is refused unless ``overwrite=True``."""
    import os
    import tempfile

    if not isinstance(mpos, dict) or not mpos:
        raise TypeError(f"mpos must be a non-empty dict of name -> MPO, got {type(mpos).__name__}")
    for name, m in mpos.items():
        if not isinstance(name, str) or not isinstance(m, MPO):
            raise TypeError(f"mpos[{name!r}]: names are str and values MPO, got {type(m).__name__}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r}")
    path = os.fspath(path)
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
    data = bytes(_tnml.mpo_file_bytes([(n, m._inner) for n, m in mpos.items()], "tnml (Python)"))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tnml-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
