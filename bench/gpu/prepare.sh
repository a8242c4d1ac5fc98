#!/usr/bin/env bash
# Puts what bench/gpu/check.sh needs on the device machine into .device/ (ignored by git):
# the release binary built with the cuda feature and full MNIST. Run from the repository root.
set -euo pipefail
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p tnml-cli --features cuda
mkdir -p .device/data
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
cp "$target/release/tnml" .device/tnml
cp -r "${TNML_DATA_DIR:-../shared/data}/mnist" .device/data/
du -sh .device
