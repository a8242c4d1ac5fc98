"""Shared fixtures: the `tnml` CLI binary (for the interop tests) and the shipped sample."""

import os
import pathlib
import shutil

import pytest

import tnml

REPO = pathlib.Path(__file__).resolve().parents[3]


def _cli_binary():
    candidates = [os.environ.get("TNML_BIN")]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(os.path.join(target, "release", "tnml"))
    candidates += [str(REPO / "target" / "release" / "tnml"), shutil.which("tnml")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


@pytest.fixture(scope="session")
def cli():
    """Path of the `tnml` binary; CI (TNML_REQUIRE_CLI=1) fails rather than skips without it."""
    path = _cli_binary()
    if path is None:
        if os.environ.get("TNML_REQUIRE_CLI") == "1":
            pytest.fail("TNML_REQUIRE_CLI=1 but no tnml binary found (set TNML_BIN)")
        pytest.skip("no tnml binary (build it with cargo build --release -p tnml-cli, or set TNML_BIN)")
    return path


@pytest.fixture(scope="session")
def sample_small():
    """2,000 training images (the CLI's --train-limit 2000 --seed 0) and 500 test images, 14x14."""
    X, y = tnml.load_dataset("mnist-sample", "train", image_size=14, limit=2000, shuffle_seed=0)
    Xt, yt = tnml.load_dataset("mnist-sample", "test", image_size=14, limit=500)
    return X, y, Xt, yt
