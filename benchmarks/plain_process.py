"""The straightforward semi-supervised script as one whole process: the baseline of ``benchmarks/end_to_end.py``.

Usage: ``python benchmarks/plain_process.py [--preset fmnist-ssl] [--steps 600] [--out PATH] [--device cpu]
[--bf16] [--data-dir DIR]``.

What a plain port of the paper's MNIST script does from start to finish, written without the library's training
machinery: import torch, read the data set (the library's reader, so decoding costs the same on both sides),
build the same networks with the same data-dependent initialisation (paper §5; the library's model classes),
then :class:`benchmarks.ssl_step.PlainLoop` for ``--steps`` steps (DataLoaders, three D passes, full autograd
in the generator step, ``torch.optim.Adam``, two ``.item()`` per step), one test-accuracy evaluation of D
(noise off, batches of 1000) and one ``torch.save`` of both networks and optimizers. It prints one JSON line:
``{"steps", "test_accuracy", "seconds": {...phases...}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

T0 = time.perf_counter()

import torch  # noqa: E402

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ssl_step import PlainLoop  # noqa: E402
from improved_gan.data import labeled_subset, load_dataset  # noqa: E402
from improved_gan.nn import data_dependent_init  # noqa: E402
from improved_gan.training.config import override  # noqa: E402
from improved_gan.training.experiment import build_networks  # noqa: E402
from improved_gan.training.presets import get_preset  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fmnist-ssl")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="checkpoint file (default: none written)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast of the forward passes")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    args = ap.parse_args(argv)
    phases: dict[str, float] = {"imports": time.perf_counter() - T0}
    device = torch.device(args.device)

    t = time.perf_counter()
    cfg = override(get_preset(args.preset), args.set)
    ds = load_dataset(cfg.data.dataset, data_dir=args.data_dir)
    x, y = ds.normalize(ds.train_images), ds.train_labels  # (N, C, H, W), (N,)
    x_test, y_test = ds.normalize(ds.test_images), ds.test_labels
    lab = labeled_subset(y, cfg.data.labels_per_class, cfg.data.label_seed)
    phases["data"] = time.perf_counter() - t

    t = time.perf_counter()
    torch.manual_seed(args.seed)
    G, D = build_networks(cfg, image_shape=tuple(ds.image_shape), num_classes=ds.num_classes)
    with torch.no_grad():
        data_dependent_init(G, G.sample_z(cfg.model.init_batch))
        data_dependent_init(D, x[torch.randperm(x.shape[0])[: cfg.model.init_batch]])
    net = SimpleNamespace(cfg=cfg, G=G, D=D, data=SimpleNamespace(train_x=x, train_y=y), lab_idx=lab)
    loop = PlainLoop(net, device=args.device, bf16=args.bf16)
    phases["init"] = time.perf_counter() - t

    t = time.perf_counter()
    for _ in range(args.steps):
        losses = loop.train_step()
    phases["steps"] = time.perf_counter() - t

    t = time.perf_counter()
    loop.D.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x_test.shape[0], 1000):
            logits = loop.D(x_test[i : i + 1000].to(device))[0]
            correct += (logits.argmax(1).cpu() == y_test[i : i + 1000]).sum().item()
    phases["evaluation"] = time.perf_counter() - t

    t = time.perf_counter()
    if args.out is not None:
        state = {k: getattr(loop, k).state_dict() for k in ("G", "D", "opt_d", "opt_g")}
        torch.save(state, args.out)
    phases["checkpoint"] = time.perf_counter() - t
    phases["total"] = time.perf_counter() - T0
    out = {
        "steps": args.steps,
        "test_accuracy": correct / x_test.shape[0],
        "final_losses": losses,
        "seconds": phases,
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
