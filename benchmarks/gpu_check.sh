#!/usr/bin/env bash
# GPU readiness check of the training step (< 5 minutes on one GPU). Usage:
#   bash benchmarks/gpu_check.sh [OUT_DIR]            # on a machine with CUDA
#   DEVICE=cpu STEPS=3 SMALL=1 SKIP_COMPILE=1 bash benchmarks/gpu_check.sh   # the pieces on the CPU (tests):
#     SMALL=1 shrinks the CIFAR-shaped run (batch 20, init batch 40, 400 fake images) so that it takes seconds
# 1. fmnist-ssl: `improved-gan train` against the straightforward script (benchmarks/plain_process.py), whole
#    processes, fp32 and bf16, plus the step alone (benchmarks/end_to_end.py);
# 2. cifar10-ssl on fake data of CIFAR's shape (benchmarks/gpu_pieces.py fake-cifar), ours against plain, fp32/bf16;
# 3. torch.compile of the step, default and reduce-overhead (CUDA graphs) modes (benchmarks/compile_step.py);
# 4. a 1-GPU torchrun (NCCL on CUDA, gloo on the CPU) of fmnist-ssl;
# 5. the checkpoint that run wrote on the GPU loaded on the CPU, restored into a CPU trainer, trained 2 steps.
# Every result is JSON under OUT_DIR (default benchmarks/results/gpu_check); tables go to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-300}
OUT=${1:-benchmarks/results/gpu_check}
PY=${PYTHON:-python}
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
echo "== device $DEVICE, $STEPS steps; $(uptime)"
if [ "$DEVICE" != cpu ]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true; fi
SMALL_STEP=$(( STEPS < 20 ? STEPS : 20 ))
PARTS=${PARTS:-12345}  # which of the parts below to run
part() { [[ "$PARTS" == *"$1"* ]]; }

if part 1; then
echo "== 1. fmnist-ssl, ours vs plain, fp32 and bf16"
$PY benchmarks/end_to_end.py --device "$DEVICE" --steps "$STEPS" --repeats 1 --variants bf16,plain_bf16 \
  --step-steps "$SMALL_STEP" --step-blocks 3 --json "$OUT/fmnist_ssl.json"
fi

if part 2; then
echo "== 2. cifar10-ssl on fake CIFAR-shaped data, ours vs plain, fp32 and bf16"
CIFAR_SETS=()
if [ "${SMALL:-0}" = 1 ]; then
  $PY benchmarks/gpu_pieces.py fake-cifar "$TMP/data" --per-batch 80 --test 40 >/dev/null
  CIFAR_SETS=(--set data.batch_size=20 --set model.init_batch=40 --set data.labels_per_class=4)
else
  $PY benchmarks/gpu_pieces.py fake-cifar "$TMP/data" >/dev/null
fi
$PY benchmarks/end_to_end.py --device "$DEVICE" --preset cifar10-ssl --data-dir "$TMP/data" "${CIFAR_SETS[@]}" \
  --steps "$(( STEPS * 2 / 3 ))" --repeats 1 --variants bf16,plain_bf16 --skip-step --json "$OUT/cifar10_ssl.json"
fi

echo "== 3. torch.compile of the step"
MODES=default
if [ "$DEVICE" != cpu ]; then MODES=default,reduce-overhead; fi
if [ "${SKIP_COMPILE:-0}" = 1 ] || ! part 3; then echo "skipped (SKIP_COMPILE=1)"; else
  $PY benchmarks/compile_step.py --device "$DEVICE" --modes "$MODES" --steps "$SMALL_STEP" --repeats 3 \
    --json "$OUT/compile_step.json"
fi

if part 4; then
echo "== 4. one-process torchrun (NCCL on CUDA)"
$PY -m torch.distributed.run --standalone --nproc_per_node 1 -m improved_gan train fmnist-ssl \
  --steps "$(( STEPS / 3 + 1 ))" --checkpoint-every 10 --eval-every 1000 --device "$DEVICE" --quiet \
  --out "$TMP/ddp" | tee "$OUT/torchrun.txt"
$PY -c "import json,sys; s=json.load(open(sys.argv[1])); print('torchrun summary:', {k: s[k] for k in ('steps','world_size','images_per_second','test_accuracy')})" "$TMP/ddp/summary.json"
fi

if part 5 && [ -d "$TMP/ddp" ]; then
echo "== 5. the checkpoint written on $DEVICE, loaded on the CPU"
$PY benchmarks/gpu_pieces.py load-on-cpu "$TMP/ddp" --steps 2 | tee "$OUT/load_on_cpu.json"
fi
echo "== done; results in $OUT"
