#!/usr/bin/env bash
# Installs everything improved-gan needs, on a fresh Debian/Ubuntu machine with Python >= 3.10 or on a machine
# where the user already has a virtual environment active. Safe to run again.
#
# - the Debian package `dataset-fashion-mnist` (the IDX files in /usr/share/datasets/fashion-mnist/);
# - a Python environment: the one the user has active ($VIRTUAL_ENV, else $CONDA_PREFIX), else a virtual
#   environment `.venv` in the checkout (or $IMPROVED_GAN_VENV), created with $PYTHON (default python3).
#   Debian's `python3-venv` is installed only where the venv module cannot create one. Nothing is ever
#   installed into the system Python (PEP 668) and `--break-system-packages` is never used;
# - PyTorch pinned to a CPU build ($TORCH_VERSION, default 2.13.0) and this package, editable, with the extras
#   in $IMPROVED_GAN_EXTRAS (default "test").
#
# Afterwards: `source .venv/bin/activate` (the last line printed says which environment was used).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found: install the package(s) $* by hand" >&2
    exit 2
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  $SUDO apt-get install -y -qq "$@"
}

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  apt_install dataset-fashion-mnist
fi

if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  ENV_DIR=$VIRTUAL_ENV
  ACTIVATE="(already active: $ENV_DIR)"
elif [ -n "${CONDA_PREFIX:-}" ] && [ -x "$CONDA_PREFIX/bin/python" ]; then
  ENV_DIR=$CONDA_PREFIX
  ACTIVATE="(already active: conda environment $ENV_DIR)"
else
  ENV_DIR=${IMPROVED_GAN_VENV:-$ROOT/.venv}
  ACTIVATE="source $ENV_DIR/bin/activate"
  BASE_PY=${PYTHON:-python3}
  if ! command -v "$BASE_PY" >/dev/null 2>&1; then
    echo "error: PYTHON=$BASE_PY: no such interpreter (expected Python >= 3.10)" >&2
    exit 2
  fi
  if ! "$BASE_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "error: $BASE_PY is Python $("$BASE_PY" -c 'import platform; print(platform.python_version())'); improved-gan needs >= 3.10 (set PYTHON=...)" >&2
    exit 2
  fi
  if [ ! -x "$ENV_DIR/bin/python" ]; then
    # Debian and Ubuntu ship the venv module without ensurepip unless python3-venv is installed.
    if ! "$BASE_PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      PYVER=$("$BASE_PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      apt_install "python${PYVER}-venv" || apt_install python3-venv
    fi
    rm -rf "$ENV_DIR"
    "$BASE_PY" -m venv "$ENV_DIR"
  fi
fi
PY=$ENV_DIR/bin/python
if [ "$("$PY" -c 'import sys; print(int(sys.prefix != sys.base_prefix or "CONDA_PREFIX" in __import__("os").environ))')" != 1 ]; then
  echo "error: $PY is not a virtual environment; refusing to install into a system Python" >&2
  exit 2
fi
"$PY" -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
"$PY" -m pip install -q --disable-pip-version-check -e ".[${IMPROVED_GAN_EXTRAS:-test}]"
echo "improved-gan installed in $ENV_DIR; to use it: $ACTIVATE"
