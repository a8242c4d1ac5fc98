"""Strict option checks shared by the Python API: no silent coercion (1.5 is not 1, True is not 1)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _count(name: str, value: Any, minimum: int) -> int:
    """An integer option: a Python or NumPy int (not a bool, not a float such as 1.5 or 2.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}={value!r}: expected an integer")
    if value < minimum:
        raise ValueError(f"{name}={value!r}: it must be at least {minimum}")
    if value >= 2**63:
        raise ValueError(f"{name}={value!r}: too large")
    return int(value)


def _real(name: str, value: Any, minimum: float | None = None) -> float:
    """A real option: an int or float (not a bool or a string); NaN is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}={value!r}: expected a number")
    v = float(value)
    if v != v:
        raise ValueError(f"{name}={value!r}: not a number")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}={value!r}: it must be at least {minimum}")
    return v


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={value!r}: expected True or False")
    return bool(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}={value!r}: expected a string")
    return value


def _optional_count(name: str, value: Any, minimum: int) -> int | None:
    """None, or an integer option as :func:`_count`."""
    return None if value is None else _count(name, value, minimum)


def _optional_real(name: str, value: Any, minimum: float | None = None) -> float | None:
    """None, or a real option as :func:`_real`."""
    return None if value is None else _real(name, value, minimum)


def _optional_flag(name: str, value: Any) -> bool | None:
    """None, or True / False."""
    return None if value is None else _flag(name, value)
