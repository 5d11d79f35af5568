#!/usr/bin/env bash
# GPU check of the training step: needs only this repository and a PyTorch with CUDA (no data, no network).
#   bash benchmarks/gpu_check.sh [OUT_DIR]                       # on a GPU machine (< 8 minutes)
#   DEVICE=cpu SMALL=1 bash benchmarks/gpu_check.sh [OUT_DIR]    # every part on the CPU, tiny (the test runs this)
# Writes OUT_DIR/gpu_check.json (default benchmarks/results/gpu_check) and prints one table; what is measured is
# listed in benchmarks/gpu_check.py. STEPS=N sets the timed steps per measurement (default 100; SMALL: 2).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
OUT=${1:-benchmarks/results/gpu_check}
PY=${PYTHON:-python3}
ARGS=(--device "$DEVICE" --out "$OUT")
if [ "${SMALL:-0}" = 1 ]; then ARGS+=(--small); fi
if [ -n "${STEPS:-}" ]; then ARGS+=(--steps "$STEPS"); fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ "$DEVICE" != cpu ] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
fi
exec "$PY" benchmarks/gpu_check.py "${ARGS[@]}"
