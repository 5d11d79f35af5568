"""Helpers shared by the resume, long-run and torchrun tests: comparing two runs, starting torchrun."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


def assert_tensors_equal(a, b, path: str = "") -> None:
    """Assert two checkpoint structures are identical: same keys, tensors bit for bit and of the same dtype.
    ``wall_seconds`` (the run's clock) is skipped wherever it appears."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k != "wall_seconds":
                assert_tensors_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tensors_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def metric_rows(run: Path) -> list[dict]:
    """The rows of ``run/metrics.jsonl`` without the timing fields (which differ between equal runs)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r.pop("wall_seconds"), r.pop("images_per_second")
    return rows


def torchrun_cmd(*args: str, restarts: int = 0) -> list[str]:
    """``python -m torch.distributed.run`` with 2 local processes and ``restarts`` restarts, then ``args``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--max-restarts",
        str(restarts),
        *args,
    ]


def one_thread_env(**extra: str) -> dict[str, str]:
    """This environment with one torch thread per process and unbuffered output, plus ``extra``."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def tiny_fmnist_gan_run(tmp_path: Path, *, seed: int) -> tuple[Path, Path]:
    """A one-step ``fmnist-gan`` run on small fake Fashion-MNIST files, without metrics, through the CLI;
    returns ``(data_dir, run_dir)``."""
    from data_files import write_idx_dataset
    from improved_gan.cli import main

    data = tmp_path / "data"
    write_idx_dataset(data, n_train=60, n_test=20, seed=seed)
    run = tmp_path / "gan"
    small = ["--set", "data.batch_size=8", "--set", "model.init_batch=16", "--set", "train.metrics=none"]
    argv = ["train", "fmnist-gan", "--data-dir", str(data), "--out", str(run), "--steps", "1", "--quiet"]
    assert main([*argv, *small]) == 0
    return data, run
