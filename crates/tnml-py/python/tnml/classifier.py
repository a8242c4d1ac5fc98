"""The MPS classifier of Stoudenmire & Schwab (2016), in scikit-learn's style."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Sequence

import numpy as np

from . import _arrays, _tnml
from ._checks import _count, _flag, _real, _text

_PARAMS = (
    "max_bond",
    "sweeps",
    "loss",
    "lam",
    "feature_map",
    "image_shape",
    "threads",
    "verbose",
    "trainer",
    "cutoff",
    "cg_passes",
    "refit_passes",
    "turn_site",
    "epochs",
    "batch_size",
    "lr",
    "lr_schedule",
    "shift",
    "flip",
    "random_state",
    "refit",
    "refit_lambda",
    "device",
    "bond",
)


class MPSClassifier:
    """A matrix product state over the pixels with a label index, ``f^l(x) = <W^l, Phi(x)>``.

    ``Phi(x)`` is the product of local feature maps (``feature_map``: ``"trig"`` =
    ``[cos(pi x/2), sin(pi x/2)]``, the paper's; ``"trigN"``; ``"linear"`` = ``[1-x, x]``) over the pixels
    in raster order. X is float in [0, 1], shape ``(n, h*w)``; y holds integer labels ``0..L-1``.

    ``max_bond`` is called as in :meth:`MPO.from_dense` (``bond=``, its old name, still works with a
    ``FutureWarning``).

    ``trainer="sweep"`` (the paper's DMRG-like two-site sweeps, the label index moving, the bond
    dimension adapting up to ``max_bond`` with relative discarded weight ``cutoff`` per SVD; ``max_bond`` may
    be a list, one cap per sweep, the last repeating): starts from the class means, ``sweeps``
    sweeps of ``cg_passes`` CG steps per bond with L2 penalty ``lam``; ``loss="cross-entropy"``
    (softmax logits, predicts ``argmax f``) or ``"squared"`` (the paper's quadratic cost, predicts
    ``argmax |f|``). ``refit="ridge"`` / ``"softmax"`` then refits the core at the label site on the
    reduced features (``refit_lambda``, or for softmax chosen on the last sixth of the data).

    ``trainer="gradient"``: Adam on all cores at a fixed ``max_bond``, ``epochs`` passes in minibatches
    of ``batch_size`` at step ``lr`` (``lr_schedule="cosine"``: decayed to 0 over the training),
    each epoch's images translated by up to ``shift`` pixels (0: none) and, with ``flip``, mirrored
    left-right with probability 1/2 (clothes, objects; not digits), starting near the identity
    (``random_state`` seeds it, the batch order and the shifts).

    ``device``: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"`` (the gradient trainer on a GPU; needs tnml built
    with its ``cuda`` feature and a CUDA driver, else fit raises). ``threads``: worker threads (None: all cores). ``verbose``: a line per sweep or epoch on stderr.
    Ctrl-C stops training between bond updates (or minibatches): ``model_`` keeps the last good
    state, ``interrupted_`` is True, and the ``KeyboardInterrupt`` propagates.

    Defaults are ``tnml mps train``'s, read from the trainers (``tnml._tnml.defaults()``): the paper's
    bond 10, 3 sweeps, ``lam=0``, cutoff 1e-10; ``loss=None`` is the trainer's own: ``"squared"`` for
    the sweeps (the paper's), ``"cross-entropy"`` for the gradient trainer; 10 epochs of batches of
    50 at ``lr=1e-3``. (Earlier versions of ``MPSClassifier()`` defaulted to bond 20, 2 cross-entropy sweeps and
    ``lam=0.5``: pass those to keep them.)

    The same options and data as ``tnml mps train`` give the same model: the model file of
    :meth:`save` is the CLI's ``model.safetensors`` (``tnml mps eval --model FILE``).
    """

    def __init__(
        self,
        max_bond: int | Sequence[int] = 10,
        sweeps: int = 3,
        loss: str | None = None,
        lam: float = 0.0,
        feature_map: str = "trig",
        image_shape: tuple[int, int] | None = None,
        threads: int | None = None,
        verbose: bool = False,
        trainer: str = "sweep",
        cutoff: float = 1e-10,
        cg_passes: int = 3,
        refit_passes: int = 1,
        turn_site: int | None = None,
        epochs: int = 10,
        batch_size: int = 50,
        lr: float = 1e-3,
        lr_schedule: str = "constant",
        shift: int = 0,
        flip: bool = False,
        random_state: int = 0,
        refit: str | None = None,
        refit_lambda: float | None = None,
        device: str = "cpu",
        bond: int | Sequence[int] | None = None,
    ):
        self.max_bond = max_bond
        self.sweeps = sweeps
        self.loss = loss
        self.lam = lam
        self.feature_map = feature_map
        self.image_shape = image_shape
        self.threads = threads
        self.verbose = verbose
        self.trainer = trainer
        self.cutoff = cutoff
        self.cg_passes = cg_passes
        self.refit_passes = refit_passes
        self.turn_site = turn_site
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.shift = shift
        self.flip = flip
        self.random_state = random_state
        self.refit = refit
        self.refit_lambda = refit_lambda
        self.device = device
        self.bond = bond

    # scikit-learn's estimator protocol
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {p: getattr(self, p) for p in _PARAMS}

    def set_params(self, **params: Any) -> "MPSClassifier":
        for k, v in params.items():
            if k not in _PARAMS:
                raise ValueError(f"MPSClassifier has no parameter {k!r} (it has: {', '.join(_PARAMS)})")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = MPSClassifier()
        changed = [f"{p}={getattr(self, p)!r}" for p in _PARAMS if getattr(self, p) != getattr(defaults, p)]
        return f"MPSClassifier({', '.join(changed)})"

    def _image(self, n_pixels: int) -> tuple[int, int]:
        if self.image_shape is not None:
            h, w = (int(v) for v in self.image_shape)
            if h * w != n_pixels:
                raise ValueError(f"image_shape {self.image_shape} has {h * w} pixels, X has {n_pixels} columns")
            return h, w
        side = int(round(np.sqrt(n_pixels)))
        if side * side != n_pixels:
            raise ValueError(f"X has {n_pixels} columns, not a square image: give image_shape=(h, w)")
        return side, side

    def _options(self) -> dict[str, Any]:
        given = self.max_bond
        if self.bond is not None:
            # the old name: `bond=` is `max_bond=` (as in MPO.from_dense)
            if self.max_bond != 10:
                raise ValueError(f"bond={self.bond!r} and max_bond={self.max_bond!r}: give max_bond only")
            warnings.warn("MPSClassifier(bond=) is now max_bond=", FutureWarning, stacklevel=3)
            given = self.bond
        bond = [given] if np.isscalar(given) else list(given)
        for b in bond:
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0:
                raise ValueError(f"max_bond {given!r}: bond dimensions are positive integers")
        return {
            "trainer": _text("trainer", self.trainer),
            "bond": [int(b) for b in bond],
            "cutoff": _real("cutoff", self.cutoff, minimum=0.0),
            "sweeps": _count("sweeps", self.sweeps, minimum=0),
            "cg_passes": _count("cg_passes", self.cg_passes, minimum=0),
            "refit_passes": _count("refit_passes", self.refit_passes, minimum=0),
            "lam": _real("lam", self.lam),
            "loss": None if self.loss is None else _text("loss", self.loss),
            "feature_map": _text("feature_map", self.feature_map),
            "turn_site": None if self.turn_site is None else _count("turn_site", self.turn_site, minimum=0),
            "epochs": _count("epochs", self.epochs, minimum=0),
            "batch_size": _count("batch_size", self.batch_size, minimum=0),
            "lr": _real("lr", self.lr),
            "lr_schedule": _text("lr_schedule", self.lr_schedule),
            "shift": _count("shift", self.shift, minimum=0),
            "flip": _flag("flip", self.flip),
            "seed": _count("random_state", self.random_state, minimum=0),
            "threads": None if self.threads is None else _count("threads", self.threads, minimum=0),
            "refit": None if self.refit is None else _text("refit", self.refit),
            "refit_lambda": None if self.refit_lambda is None else _real("refit_lambda", self.refit_lambda),
            "device": _text("device", self.device),
        }

    def _report(self, event: dict) -> None:
        kind = event["event"]
        if kind == "sweep":
            print(
                f"sweep {event['sweep']}: train error {event['train_error']:.4f}, cost {event['cost']:.5f}, "
                f"max bond {event['max_bond']}, discarded weight {event['discarded_weight']:.3e}, "
                f"{event['seconds']:.1f} s",
                file=sys.stderr,
            )
        elif kind == "epoch":
            print(
                f"epoch {event['epoch']}: loss {event['loss']:.5f}, train error {event['train_error']:.4f}, "
                f"{event['seconds']:.1f} s",
                file=sys.stderr,
            )
        elif kind == "note":
            print(event["text"], file=sys.stderr)
        elif kind == "step" and sys.stderr.isatty():
            what = "sweep" if "sweep" in event else "epoch"
            print(f"\r{what} {event[what]} step {event['step']}/{event['steps']} cost {event['cost']:.5f}",
                  end="", file=sys.stderr, flush=True)
        self.history_.append(event)

    def fit(self, X: Any, y: Any) -> "MPSClassifier":
        """Trains on images ``X`` ``(n, h*w)`` in [0, 1] and labels ``y`` ``(n,)`` in ``0..L-1``.

        ``L = max(y) + 1`` (at least 2). Returns self; progress records are in ``history_``.
        """
        x = _arrays.pixels(X)
        labels = _arrays.labels(y, x.shape[0])
        num_labels = max(int(labels.max()) + 1, 2)
        image = self._image(x.shape[1])
        self.history_: list[dict] = []
        self.interrupted_ = False
        callback = (lambda e: self._report(e)) if self.verbose else self.history_.append
        model, interrupt = _tnml.fit(x, labels, image, num_labels, self._options(), callback)
        self.model_ = model
        self.classes_ = np.arange(num_labels)
        self.n_features_in_ = x.shape[1]
        if interrupt is not None:
            self.interrupted_ = True
            raise interrupt
        return self

    def _fitted(self) -> "_tnml.Model":
        model = getattr(self, "model_", None)
        if model is None:
            raise RuntimeError("this MPSClassifier is not fitted yet: call fit(X, y) or MPSClassifier.load(path)")
        return model

    def decision_function(self, X: Any) -> np.ndarray:
        """The scores ``f^l(x)`` ``(n, L)``, float64 (``inf``/0 where a score leaves float64's range;
        see :meth:`decision_function_normalized`)."""
        values, log_scale = self.decision_function_normalized(X)
        with np.errstate(over="ignore"):
            return values * np.exp(log_scale)[:, None]

    def decision_function_normalized(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Scores normalized per image and the log of the scale removed:
        ``f^l(x_n) = values[n, l] * exp(log_scale[n])`` (never overflows, however many sites)."""
        return self._fitted().scores_normalized(_arrays.pixels(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes ``(n,)`` int64: ``argmax_l f^l`` for cross-entropy models,
        ``argmax_l |f^l|`` for the quadratic cost (the paper's rule)."""
        return self._fitted().predict(_arrays.pixels(X))

    def score(self, X: Any, y: Any) -> float:
        """Mean accuracy (scikit-learn's convention; ``tnml mps eval`` prints the error, 1 - accuracy)."""
        x = _arrays.pixels(X)
        labels = _arrays.labels(y, x.shape[0], self._fitted().num_labels)
        return float(np.mean(self.predict(x) == labels))

    @property
    def bond_dims(self) -> list[int]:
        """Bond dimensions of the fitted model."""
        return self._fitted().bond_dims

    @property
    def num_params(self) -> int:
        return self._fitted().num_params

    def save(self, path: str | os.PathLike) -> None:
        """Writes the model file (``tnml mps train``'s ``model.safetensors`` format) atomically."""
        self._fitted().save(os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MPSClassifier":
        """A fitted classifier from a model file written by :meth:`save` or ``tnml mps train``."""
        model = _tnml.Model.load(os.fspath(path))
        clf = cls(
            max_bond=max(model.bond_dims, default=1),
            feature_map=model.feature_map,
            image_shape=tuple(model.image_shape),
            loss="cross-entropy" if model.decision == "signed" else "squared",
        )
        clf.model_ = model
        clf.classes_ = np.arange(model.num_labels)
        clf.n_features_in_ = model.image_shape[0] * model.image_shape[1]
        clf.interrupted_ = False
        return clf
