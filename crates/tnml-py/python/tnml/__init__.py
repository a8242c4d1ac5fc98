"""tnml: tensor-network machine learning, from Rust.

- :class:`MPO` — compress a dense weight by TT-SVD, read its cores, truncate, entanglement per bond.
- :func:`read_mpos` / :func:`save_mpos` — MPO files as ``tnml mpo compress`` writes them.
- :func:`entangle` — entanglement of every weight of a state_dict or safetensors file, one table.
- :class:`MPSClassifier` — the MPS classifier of Stoudenmire & Schwab (2016), scikit-learn style.
- :func:`load_dataset` — MNIST / Fashion-MNIST pixels exactly as ``tnml mps`` reads them.

Conventions (as the Rust core): MPO cores ``[left, in, out, right]``; dense matrices
``(prod out, prod in)`` like ``nn.Linear.weight``; entropies in natural log.
"""

from . import _tnml
from ._tnml import load_dataset
from .classifier import MPSClassifier
from .entangle import entangle
from .mpo import MPO, read_mpos, save_mpos

__version__ = _tnml.__version__
__all__ = ["MPO", "MPSClassifier", "entangle", "load_dataset", "read_mpos", "save_mpos", "__version__"]
