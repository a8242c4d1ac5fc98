#!/usr/bin/env bash
# Creates bench/.venv with NumPy (and threadpoolctl to report which BLAS kernel runs).
# Used only by the benchmarks, never by the tests.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check numpy threadpoolctl
.venv/bin/python -c "import numpy; print('numpy', numpy.__version__, 'in bench/.venv')"
