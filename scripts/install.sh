#!/usr/bin/env bash
# Installs everything improved-gan needs on a fresh Debian/Ubuntu machine with Python >= 3.10:
# the Fashion-MNIST data package, a CPU build of PyTorch pinned to a version that installs from local disk here,
# and the package itself (editable) with its test extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist
fi
"$PY" -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
