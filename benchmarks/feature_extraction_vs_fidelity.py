"""Inception feature extraction, improved-gan against torch-fidelity, side by side in one process.

    python benchmarks/feature_extraction_vs_fidelity.py [--n 200] [--batch-size 50] [--threads 1] [--rounds 3]
        [--source fashion-mnist|random] [--json PATH]

Both extractors run the 2015 Inception-v3 graph (torch-fidelity's ``inception-v3-compat``) from ONE weights
file, in the same interpreter with the same torch and thread count, on the same uint8 images and batch size:

- ours: :func:`improved_gan.metrics.features.inception_outputs` with the builtin
  :class:`~improved_gan.metrics.inception_net.InceptionV3TF2015` (the path of every metric: uint8 batches,
  resize inside the network, pool features and probabilities);
- theirs: ``torch_fidelity``'s ``FeatureExtractorInceptionV3`` asked for ``2048`` and ``logits_unbiased`` on
  the same batches under ``torch.no_grad`` (what its ``get_featuresdict`` does per batch, without its data
  loader).

The real weights cannot be downloaded here, so a randomly initialised network (``torch.manual_seed(0)``) is
saved in torch-fidelity's format (``weights-inception-2015-12-05-6726825d.pth``); the cost does not depend on
the values. One warm-up batch each, then ``--rounds`` timed passes over all images, interleaved and in an order
that alternates between rounds (ours, theirs; theirs, ours; ...), so that drifts of a shared machine's speed
hit both alike. Reports the median images/s of each, their ratio, the largest absolute difference of the
2048-d features, and each one's largest difference from the same network run in float64 on the first
``--reference-images`` images (the scale of float32 rounding through the 94 layers). torch-fidelity needs a torchvision built for this torch; when ``torch_fidelity`` does not
import, the script says so and exits 0 without measuring. Prints a table and writes JSON (default
``benchmarks/results/feature_extraction_vs_fidelity.json``).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import importlib.metadata
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_info, write_json  # noqa: E402
from improved_gan.metrics.inception_net import InceptionV3TF2015  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "feature_extraction_vs_fidelity.json"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def _images(source: str, n: int) -> torch.Tensor:
    """``n`` uint8 RGB images (n, 3, H, W): Fashion-MNIST test images (grey repeated to 3 channels, 28x28) or
    random 32x32 colour images."""
    if source == "fashion-mnist":
        with gzip.open(FASHION_MNIST, "rb") as f:
            raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
        if n > raw.shape[0]:
            raise SystemExit(f"error: --n {n} exceeds the {raw.shape[0]} images of {FASHION_MNIST}")
        return torch.from_numpy(raw[:n].copy()).repeat(1, 3, 1, 1)
    return torch.randint(
        0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _random_network(calibration: torch.Tensor) -> torch.nn.Module:
    """A randomly initialised 2015 Inception-v3 whose batch-norm statistics are set from one pass over
    ``calibration`` (uint8 (B, 3, H, W)), so that every layer's output has unit scale and the 2048-d features are
    of order 1 (with the default statistics they shrink layer by layer to ~1e-7, and a feature difference would
    say nothing)."""

    def set_stats(bn: torch.nn.BatchNorm2d, inputs: tuple[torch.Tensor]) -> None:
        x = inputs[0]  # (B, C, H, W)
        bn.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        bn.running_var.copy_(x.var(dim=(0, 2, 3)))

    net = InceptionV3TF2015()
    hooks = [
        m.register_forward_pre_hook(set_stats) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)
    ]
    with torch.no_grad():
        net.pool_features(calibration)
    for h in hooks:
        h.remove()
    return net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per timed pass")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes of each extractor")
    parser.add_argument("--source", choices=("fashion-mnist", "random"), default="fashion-mnist")
    parser.add_argument(
        "--reference-images",
        type=int,
        default=16,
        help="images also run in float64 to size the rounding error",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    if args.n < 1 or args.batch_size < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--n, --batch-size, --rounds and --threads must be positive")
    try:
        import torch_fidelity
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception as exc:  # ImportError, or torchvision failing to load beside this torch
        print(
            f"skipped: torch_fidelity is not importable here ({exc.__class__.__name__}: {exc}); install "
            "torch-fidelity and a torchvision built for this torch to compare side by side"
        )
        return 0

    import improved_gan
    from improved_gan.metrics import features
    from improved_gan.metrics.inception import WEIGHTS_NAME

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = _images(args.source, args.n)
    bs = args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / WEIGHTS_NAME
        torch.save(_random_network(images[:8]).state_dict(), weights)
        features.clear_cache()
        scorer = features.inception(weights, device="cpu", backend="builtin")
        theirs_net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(weights)
        )

    def ours(x: torch.Tensor) -> np.ndarray:
        pool, _probs = features.inception_outputs(scorer, x, batch_size=bs)
        return pool

    def theirs(x: torch.Tensor) -> np.ndarray:
        pools = []
        with torch.no_grad():
            for s in range(0, x.shape[0], bs):
                pool, _logits = theirs_net(x[s : s + bs])
                pools.append(pool)
        return torch.cat(pools).double().numpy()

    fns = {"improved-gan": ours, "torch-fidelity": theirs}
    for fn in fns.values():
        fn(images[:bs])  # warm-up batch
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    outputs: dict[str, np.ndarray] = {}
    names = list(fns)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            outputs[name] = fns[name](images)
            seconds[name].append(time.perf_counter() - start)
            print(f"round {r + 1}: {name:<15} {seconds[name][-1]:7.1f} s", file=sys.stderr, flush=True)
    a, b = outputs["improved-gan"], outputs["torch-fidelity"]
    max_abs = float(np.abs(a - b).max())
    scale = float(np.abs(b).max())
    # float32 rounding through 94 layers: how far each is from the same network run in float64
    m = min(args.n, args.reference_images)
    net64 = copy.deepcopy(scorer.net).double()
    with torch.no_grad():
        ref = net64.pool_features(images[:m]).numpy()  # (m, 2048) float64
    float64_error = {name: float(np.abs(out[:m] - ref).max()) for name, out in outputs.items()}
    rows = []
    for name in names:
        med = statistics.median(seconds[name])
        rows.append(
            {
                "extractor": name,
                "seconds_median": med,
                "seconds": seconds[name],
                "images_per_second": args.n / med,
            }
        )
    ratio = rows[0]["images_per_second"] / rows[1]["images_per_second"]
    info = machine_info(torch.device("cpu"))
    versions = {
        "improved_gan": improved_gan.__version__,
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "torch_fidelity": torch_fidelity.__version__,
    }
    print(
        f"{args.n} {args.source} images, batch {bs}, {args.threads} thread(s), {args.rounds} interleaved rounds, "
        f"improved-gan {versions['improved_gan']}, torch {versions['torch']}, torchvision "
        f"{versions['torchvision']}, torch-fidelity {versions['torch_fidelity']}, {info['cpu']}, "
        f"load average {info['load_average_1_5_15_min']}"
    )
    print(f"{'extractor':<15}  {'median s':>8}  {'images/s':>8}  seconds per round")
    for row in rows:
        per = ", ".join(f"{s:.1f}" for s in row["seconds"])
        print(
            f"{row['extractor']:<15}  {row['seconds_median']:>8.1f}  {row['images_per_second']:>8.2f}  {per}"
        )
    print(f"speed ratio improved-gan / torch-fidelity: {ratio:.3f}")
    print(
        f"max |feature difference| over {a.shape[0]} x {a.shape[1]}: {max_abs:.3g} (largest |feature| {scale:.3g})"
    )
    print(
        f"max |difference from float64| on the first {m} images: "
        + ", ".join(f"{name} {err:.3g}" for name, err in float64_error.items())
    )
    write_json(
        args.json,
        {
            "benchmark": "feature_extraction_vs_fidelity",
            "machine": info,
            "versions": versions,
            "source": args.source,
            "n": args.n,
            "batch_size": bs,
            "threads": args.threads,
            "rounds": args.rounds,
            "rows": rows,
            "speed_ratio_ours_over_theirs": ratio,
            "max_abs_feature_difference": max_abs,
            "max_abs_feature": scale,
            "float64_reference_images": m,
            "max_abs_difference_from_float64": float64_error,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
