"""``improved-gan score``: the sample-quality metrics on anyone's samples (README, "Scoring your own samples").

This module reads the inputs and prints; the metrics themselves are :mod:`improved_gan.metrics.suite`'s (one
declaration per metric, the same code as the training loop, ``evaluate`` and ``compute_metrics``).

Inputs (:func:`load_input`):

- a ``.npy`` or ``.npz`` array (an ``.npz`` with one array, or with the key ``x``, or ``--key NAME``) of images
  ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` with C = 1 or 3, uint8 in [0, 255] or float in [0, 1] or
  [-1, 1] (``--range``, else detected: :func:`improved_gan.metrics.inputs.detect_range`), or of rows ``(N, D)``;
- a folder of PNG/JPEG images of one size (read with Pillow, in sorted file-name order);
- a run folder (it has ``config.json``): ``--num`` samples from its ``generator.pt``
  (:func:`improved_gan.sampling.generate`, seed :data:`~improved_gan.sampling.EVAL_SEED` unless ``--seed``);
- a data set split by name (``fashion-mnist-test``, as for ``--reference``), to score real data.

Every image input becomes uint8 ``(N, C, H, W)``, the form the networks take (as if saved as PNG). The
reference that FID, KID and precision/recall compare with is a second input, or a reference name
(:mod:`improved_gan.metrics.references`: ``fashion-mnist-test``, ``cifar-10-train``, ``ring8``, ...).
Metric names, their keys and meanings, and the small-sample policy are those of :mod:`improved_gan.metrics.suite`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from improved_gan.errors import UserError
from improved_gan.metrics.inputs import (
    LAYOUTS,
    RANGES,
    Samples,
    array_to_samples,
    detect_range,
    to_uint8_images,
)
from improved_gan.metrics.references import is_reference_name
from improved_gan.metrics.references import load_split as load_reference
from improved_gan.metrics.suite import METRICS, compute, meaning_of

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _load_array(path: Path, key: str | None) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # pickled objects, a truncated or foreign file
        raise UserError(f"{path}: not a readable numpy array file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        names = list(loaded.files)
        if key is None:
            key = "x" if "x" in names else names[0] if len(names) == 1 else None
        if key not in names:
            listed = ", ".join(names) or "none"
            raise UserError(f"{path}: arrays {listed}; expected one array, one named 'x', or pass --key NAME")
        try:
            return loaded[key]
        except ValueError as exc:
            raise UserError(f"{path}: array {key!r} is not readable without pickle ({exc})") from None


def _load_folder(path: Path) -> Samples:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{path}: no .png/.jpg/.jpeg images in this folder (and no config.json of a run)")
    arrays, first = [], None
    for f in files:
        try:
            with Image.open(f) as im:
                grey = im.mode in ("L", "1", "I;16", "I", "F")
                a = np.asarray(im.convert("L" if grey else "RGB"))
        except Image.DecompressionBombError:
            raise UserError(
                f"{f}: more pixels than Pillow's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS}); "
                f"expected an image of the samples' size"
            ) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{f}: not a readable image ({exc.__class__.__name__})") from None
        if first is None:
            first = (f, a.shape[:2])
        elif a.shape[:2] != first[1]:
            h, w = a.shape[:2]
            raise UserError(
                f"{path}: images of different sizes: {first[0].name} is {first[1][1]}x{first[1][0]}, "
                f"{f.name} is {w}x{h}; all must have one size"
            )
        arrays.append(a)
    if any(a.ndim == 3 for a in arrays):  # some RGB: grey images become RGB
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
        images = np.stack(arrays).transpose(0, 3, 1, 2)
    else:
        images = np.stack(arrays)[:, None]
    kind = "RGB" if images.shape[1] == 3 else "grey"
    return Samples(
        str(path), images=torch.from_numpy(np.ascontiguousarray(images)), how=f"{len(files)} {kind} images"
    )


@torch.no_grad()
def generate_from_run(
    run_dir, *, num: int, seed: int | None = None, device: str = "cpu", batch_size: int = 500
) -> Samples:
    """``num`` samples from a run's ``generator.pt`` (:func:`improved_gan.sampling.generate`, seed
    :data:`~improved_gan.sampling.EVAL_SEED` by default): uint8 images (N, C, H, W), or points (N, 2)."""
    from improved_gan.data import is_toy, to_unit
    from improved_gan.sampling import EVAL_SEED, generate
    from improved_gan.training.evaluate import load_generator

    seed = EVAL_SEED if seed is None else seed
    g, cfg = load_generator(run_dir, device=device)
    x = generate(g, num, seed=seed, batch_size=batch_size, device=device)
    how = f"{num} samples of its generator (seed {seed})"
    if is_toy(cfg.data.dataset):
        return Samples(str(run_dir), features=x.double().numpy(), how=how, dataset=cfg.data.dataset)
    unit = to_unit(cfg.data.dataset, x).numpy()  # (N, C, H, W) in [0, 1]
    images = torch.from_numpy(to_uint8_images(unit, "0,1", str(run_dir)))  # the rounding compute_metrics does
    return Samples(str(run_dir), images=images, how=how, dataset=cfg.data.dataset)


def load_input(
    path, *, value_range=None, layout=None, key=None, num: int = 10_000, seed=None, device: str = "cpu"
) -> Samples:
    """Read one INPUT of ``improved-gan score`` (see the module docstring); UserError for every bad input."""
    p = Path(path)
    if value_range is not None and value_range not in RANGES:
        raise UserError(f"--range {value_range}: expected one of {', '.join(RANGES)}")
    if p.is_dir():
        if (p / "config.json").is_file():
            return generate_from_run(p, num=num, seed=seed, device=device)
        return _load_folder(p)
    if not p.exists():
        raise UserError(f"{p}: no such file or folder")
    if p.suffix.lower() not in (".npy", ".npz"):
        raise UserError(f"{p}: expected a .npy/.npz array, a folder of PNG/JPEG images, or a run folder")
    return array_to_samples(_load_array(p, key), str(p), value_range=value_range, layout=layout)


def score(
    first: Samples,
    reference: Samples | None,
    metrics,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    device: str = "cpu",
    data_dir=None,
    **options,
) -> dict[str, Any]:
    """The ``metrics`` of ``first`` against ``reference`` -> ``{"values", "intervals", "settings"}``
    (:func:`improved_gan.metrics.suite.compute`; ``options``: its parameters and settings)."""
    dataset = first.dataset if first.dataset in ("ring8", "grid25") else None
    result = compute(
        metrics,
        first,
        reference=reference,
        dataset=dataset,
        data_dir=data_dir,
        device=device,
        bootstrap=bootstrap,
        seed=seed,
        **options,
    )
    return {"values": result.values, "intervals": result.intervals, "settings": result.settings}


def format_table(result: dict[str, Any]) -> str:
    """The values (and intervals) as a fixed-width table with what each metric means."""
    values, intervals = result["values"], result.get("intervals", {})
    rows = []
    for key, v in values.items():
        if key.endswith("_std"):
            continue
        std = values.get(f"{key}_std")
        text = f"{v:.4f}" + (f" +- {std:.4f}" if std is not None else "")
        ci = intervals.get(key)
        rows.append((key, text, f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "", meaning_of(key)))
    w0 = max([len("metric")] + [len(r[0]) for r in rows])
    w1 = max([len("value")] + [len(r[1]) for r in rows])
    w2 = max([len("95% interval") if intervals else 0] + [len(r[2]) for r in rows])
    head = (
        f"{'metric':<{w0}}  {'value':<{w1}}  "
        + (f"{'95% interval':<{w2}}  " if intervals else "")
        + "meaning"
    )
    lines = [head]
    for r in rows:
        lines.append(f"{r[0]:<{w0}}  {r[1]:<{w1}}  " + (f"{r[2]:<{w2}}  " if intervals else "") + r[3])
    return "\n".join(lines)


def list_metrics() -> str:
    """``improved-gan score --list-metrics``: every metric of the suite, its aliases, keys and meaning."""
    lines = []
    for m in METRICS.values():
        also = f" (also {', '.join(m.aliases)})" if m.aliases else ""
        lines.append(f"{m.name}{also}: {', '.join(m.keys)} - {m.meaning}")
    return "\n".join(lines)


def run_score(args) -> int:
    """The ``improved-gan score`` command (cli.py registers its options)."""
    import warnings

    from improved_gan.metrics import SingularCovarianceWarning
    from improved_gan.metrics.suite import parse_names
    from improved_gan.training.checkpoint import atomic_write_json

    if args.inception_weights is not None and not Path(args.inception_weights).expanduser().is_file():
        from improved_gan.metrics.inception import WEIGHTS_NAME, weights_search_path

        raise UserError(
            f"--inception-weights {args.inception_weights}: no such file; expected torch-fidelity's "
            f"{WEIGHTS_NAME} (or put it at {weights_search_path()[0]})"
        )
    if args.input2 is not None and args.reference is not None:
        raise UserError("give either INPUT2 or --reference, not both")
    seed = 0 if args.seed is None else args.seed
    common = dict(
        value_range=args.range,
        layout=args.layout,
        key=args.key,
        num=args.num,
        seed=args.seed,
        device=args.device,
    )
    if not Path(args.input).exists() and is_reference_name(args.input):  # e.g. fashion-mnist-test: real data
        first = load_reference(args.input, data_dir=args.data_dir)
    else:
        first = load_input(args.input, **common)
    reference = None
    if args.input2 is not None:
        reference = load_input(args.input2, **common)
    elif args.reference is not None:
        try:
            reference = load_reference(
                args.reference, data_dir=args.data_dir, num=args.num_reference, seed=seed, n_points=len(first)
            )
        except UserError as exc:
            raise UserError(f"--reference {exc}") from None
    try:
        metrics = parse_names(args.metrics)
    except UserError as exc:
        raise UserError(f"--metrics {args.metrics}: {exc}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SingularCovarianceWarning)
        result = score(
            first,
            reference,
            metrics,
            splits=args.splits,
            kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size,
            bootstrap=args.bootstrap or 0,
            seed=seed,
            device=args.device,
            inception_weights=args.inception_weights,
            inception_backend=args.inception_backend,
            classifier=args.classifier,
            data_dir=args.data_dir,
        )
    import sys

    for w in caught:
        if issubclass(w.category, SingularCovarianceWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    print(f"input:     {first.describe()}")
    if reference is not None:
        print(f"reference: {reference.describe()}")
    print(format_table(result))
    out = {
        "input": first.source,
        "num_samples": len(first),
        "reference": reference.source if reference is not None else None,
        "num_reference": len(reference) if reference is not None else None,
        "metrics": list(metrics) if metrics else None,
        "settings": {
            **result.pop("settings"),
            "bootstrap": args.bootstrap or 0,
            "seed": seed,
            "classifier": args.classifier,
        },
        **result,
    }
    if args.out:
        atomic_write_json(args.out, out)
        print(f"wrote {args.out}")
    return 0


def write_samples_npz(run_dir, *, num: int, out, seed: int | None = None, device: str = "cpu") -> Samples:
    """``improved-gan sample RUN --out FILE.npz``: key ``x``, uint8 (N, C, H, W) in [0, 255] (float32 (N, 2)
    points for the 2-D mixtures), written atomically."""
    from improved_gan.training.checkpoint import atomic_write_bytes

    s = generate_from_run(run_dir, num=num, seed=seed, device=device)
    x = s.images.numpy() if s.images is not None else s.features.astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, x=x)
    atomic_write_bytes(out, buf.getvalue())
    return s


__all__ = [
    "LAYOUTS",
    "METRICS",
    "RANGES",
    "Samples",
    "array_to_samples",
    "detect_range",
    "to_uint8_images",
    "format_table",
    "generate_from_run",
    "load_input",
    "load_reference",
    "score",
    "write_samples_npz",
]
