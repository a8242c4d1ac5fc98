#!/usr/bin/env bash
# The device check of tnml's CUDA path (issue "Scale up, part 1"), run from the repository root
# on a machine with an NVIDIA GPU; prints every figure next to the PyTorch peer on the same GPU.
#
# That machine reaches no registry: build here and carry the binary and MNIST along, e.g.
#   cargo build --release -p tnml-cli --features cuda
#   bash bench/gpu/prepare.sh          # copies the binary and ../shared/data/mnist into .device/
# then run `bash bench/gpu/check.sh` there with `.device` carried. Within 8 minutes on one H200.
#
# Environment: TNML_BIN (default .device/tnml), TNML_DATA (default .device/data, holding
# mnist/*.gz), OUT (where runs and logs go; default a temporary folder).
set -uo pipefail
BIN="${TNML_BIN:-.device/tnml}"
DATA="${TNML_DATA:-.device/data}"
OUT="${OUT:-$(mktemp -d)}"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/runs"
log="$OUT/check.log"
say() { echo "$*" | tee -a "$log"; }
epoch_s() { grep -o 'epoch 1: .*' "$1" | grep -o '[0-9.]* s$' | tr -d ' s'; }

say "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
nproc | sed 's/^/cpu threads: /' | tee -a "$log"
"$BIN" --version | tee -a "$log"

# one epoch of the gradient trainer: tnml mps train ... (device, bond, batch, name)
train() {
  local device=$1 bond=$2 batch=$3 name=$4 lr=1e-3
  [ "$bond" -gt 20 ] && lr=5e-4
  /usr/bin/time -f "wall %e s, max RSS %M kB" "$BIN" mps train --trainer gradient --dataset mnist \
    --data-dir "$DATA" --feature-map linear --max-bond "$bond" --epochs 1 --batch-size "$batch" \
    --lr "$lr" --seed 1 --device "$device" --out "$OUT/runs/$name" >"$OUT/$name.log" 2>&1
  local rc=$?
  say "$name: exit $rc, epoch $(epoch_s "$OUT/$name.log") s; $(grep -o 'test error [0-9.]*' "$OUT/$name.log" | tail -1); $(tail -1 "$OUT/$name.log")"
}

say "== 1. the same model on CPU and GPU (bond 20, batch 100, one epoch, same seed)"
train cpu 20 100 cpu-b20
train cuda 20 100 gpu-b20
"$BIN" mps eval --model "$OUT/runs/gpu-b20/model.safetensors" --compare "$OUT/runs/cpu-b20/model.safetensors" \
  --dataset mnist --data-dir "$DATA" 2>&1 | tee -a "$log" | tail -15
grep -h '"loss"' "$OUT"/runs/{cpu,gpu}-b20/metrics.jsonl | tee -a "$log"

say "== 2. tnml on the GPU"
train cuda 20 1000 gpu-b20-batch1000
train cuda 120 100 gpu-b120

say "== 3. the PyTorch peer on the same GPU (TorchMPS-style chain)"
for args in "20 100" "20 1000" "120 100"; do
  timeout 200 python3 bench/gpu/torch_chain.py "$DATA" $args 1 cuda 2>&1 | tail -1 | tee -a "$log"
done

say "== summary (seconds per epoch, 60,000 images)"
for name in cpu-b20 gpu-b20 gpu-b20-batch1000 gpu-b120; do say "tnml $name: $(epoch_s "$OUT/$name.log")"; done
say "targets: bond 120 batch 100 <= 1.5 s; bond 20 batch 100 <= 0.5 s; batch 1000 >= 2x the peer"
