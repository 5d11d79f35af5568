"""Python pieces of ``benchmarks/gpu_check.sh``; each runs on the CPU too (that is how they are tested).

Usage:

- ``python benchmarks/gpu_pieces.py fake-cifar DIR [--per-batch 2000] [--test 1000]``: writes a fake CIFAR-10 in the
  published binary format (``DIR/cifar-10-batches-bin/data_batch_{1..5}.bin``, ``test_batch.bin``: each record
  one label byte then 3072 image bytes, channel-major), with balanced labels and uniform random pixels, so that
  ``cifar10-ssl`` (4000 labels: 400 per class) runs on data of CIFAR's shape;
- ``python benchmarks/gpu_pieces.py load-on-cpu RUN_DIR [--steps 2]``: loads ``RUN_DIR/checkpoints/last.pt``
  (written on a GPU) on the CPU (``map_location="cpu"``, ``weights_only=True``), checks that every tensor is now
  on the CPU, restores a CPU :class:`~improved_gan.training.trainer.Trainer` of the run's configuration from it and
  trains ``--steps`` steps; prints one JSON line (``step`` before and after, ``test_accuracy`` on the CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def write_fake_cifar(root: Path, per_batch: int = 2000, test: int = 1000, seed: int = 0) -> Path:
    folder = Path(root) / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        n = test if name == "test_batch.bin" else per_batch
        labels = (np.arange(n) % 10).astype(np.uint8)  # balanced
        images = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], images], axis=1).tobytes())
    return folder


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def load_on_cpu(run_dir: Path, steps: int, data_dir: str | None) -> dict:
    from improved_gan.training.run import RunFolder, build_trainer, read_run_config

    folder = RunFolder(run_dir)
    cfg, _ = read_run_config(folder.root)
    state = torch.load(folder.last, map_location="cpu", weights_only=True)
    devices = {t.device.type for t in _tensors(state)}
    if devices != {"cpu"}:
        raise SystemExit(f"error: tensors on {devices} after map_location='cpu'")
    trainer, _ = build_trainer(cfg, data_dir=data_dir, device="cpu", state=state, source=folder.last)
    before = trainer.step
    for _ in range(steps):
        losses = trainer.train_step()
    out = {
        "step_loaded": before,
        "step_after": trainer.step,
        "losses_finite": all(np.isfinite(v) for v in losses.values()) if steps else True,
        "test_accuracy_cpu": trainer.test_accuracy(),
    }
    print(json.dumps(out))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fake-cifar")
    p.add_argument("dir", type=Path)
    p.add_argument("--per-batch", type=int, default=2000)
    p.add_argument("--test", type=int, default=1000)
    p = sub.add_parser("load-on-cpu")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    if args.cmd == "fake-cifar":
        print(write_fake_cifar(args.dir, per_batch=args.per_batch, test=args.test))
    else:
        load_on_cpu(args.run_dir, args.steps, args.data_dir)


if __name__ == "__main__":
    main()
