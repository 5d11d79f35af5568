#!/usr/bin/env bash
# The main job: install what is missing (scripts/install.sh, a virtual environment in .venv unless one is active),
# then a short semi-supervised training of the paper's MNIST recipe on Fashion-MNIST with 100 labels
# (fmnist-ssl). Prints the test accuracy; writes samples to runs/quickstart/samples/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if [ -n "${VIRTUAL_ENV:-}" ]; then ENV_DIR=$VIRTUAL_ENV
elif [ -n "${CONDA_PREFIX:-}" ]; then ENV_DIR=$CONDA_PREFIX
else ENV_DIR=${IMPROVED_GAN_VENV:-$(pwd)/.venv}; fi
rm -rf runs/quickstart
"$ENV_DIR/bin/improved-gan" train fmnist-ssl --out runs/quickstart --steps "${STEPS:-2000}" --eval-every 500 "$@"
