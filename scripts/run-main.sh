#!/usr/bin/env bash
# The main job: install what is missing, then a short semi-supervised training of the paper's MNIST recipe on
# Fashion-MNIST with 100 labels (fmnist-ssl). Prints the test accuracy; writes samples to runs/quickstart/samples/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
rm -rf runs/quickstart
improved-gan train fmnist-ssl --out runs/quickstart --steps "${STEPS:-2000}" --eval-every 500 "$@"
