"""The CPU-side parts of ``benchmarks/gpu_check.sh``: its fake CIFAR-10 writer and the checkpoint loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmarks.gpu_pieces import load_on_cpu, write_fake_cifar

from data_files import write_idx_dataset
from improved_gan.cli import main
from improved_gan.data import load_dataset

ROOT = Path(__file__).resolve().parent.parent


def test_fake_cifar_is_read_by_the_library_as_cifar10(tmp_path):
    write_fake_cifar(tmp_path, per_batch=30, test=20)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert tuple(ds.train_images.shape) == (150, 3, 32, 32) and tuple(ds.test_images.shape) == (20, 3, 32, 32)
    assert ds.train_images.dtype == torch.uint8
    # labels cycle 0..9 in every batch file, as written
    np.testing.assert_array_equal(ds.train_labels[:30].numpy(), np.arange(30) % 10)
    # the first record's image bytes, read back independently of the library
    raw = (tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin").read_bytes()
    first = np.frombuffer(raw[1:3073], dtype=np.uint8).reshape(3, 32, 32)
    np.testing.assert_array_equal(ds.train_images[0].numpy(), first)


def test_checkpoint_loads_on_the_cpu_and_training_continues(tmp_path, capsys):
    data = tmp_path / "data"
    write_idx_dataset(data, n_train=200, n_test=50, seed=3)
    run = tmp_path / "run"
    args = ["--set", "data.batch_size=20", "--set", "model.init_batch=40", "--quiet", "--steps", "3"]
    assert main(["train", "fmnist-ssl", "--data-dir", str(data), "--out", str(run), *args]) == 0
    capsys.readouterr()
    out = load_on_cpu(run, steps=2, data_dir=str(data))
    assert out["step_loaded"] == 3 and out["step_after"] == 5 and out["losses_finite"]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out


@pytest.mark.slow
def test_gpu_check_script_runs_on_the_cpu(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "STEPS": "3", "SKIP_COMPILE": "1", "SMALL": "1"}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHON"] = sys.executable
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("fmnist_ssl.json", "cifar10_ssl.json", "load_on_cpu.json", "torchrun.txt"):
        assert (tmp_path / "out" / name).is_file()
    assert (
        json.loads((tmp_path / "out" / "load_on_cpu.json").read_text())["step_after"] == 4
    )  # torchrun trained STEPS / 3 + 1 = 2 steps, then 2 on the CPU
