"""``improved-gan score``: the sample-quality metrics on anyone's samples (README, "Scoring your own samples").

Inputs (:func:`load_input`):

- a ``.npy`` or ``.npz`` array (an ``.npz`` with one array, or with the key ``x``, or ``--key NAME``) of images
  ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` with C = 1 or 3, uint8 in [0, 255] or float in [0, 1] or
  [-1, 1] (``--range``, else detected; see :func:`detect_range`), or of features ``(N, D)``;
- a folder of PNG/JPEG images of one size (read with Pillow, in sorted file-name order);
- a run folder (it has ``config.json``): ``--num`` samples from its ``generator.pt``;
- a data set split by name (``fashion-mnist-test``, as for ``--reference``), to score real data.

Every image input becomes uint8 ``(N, C, H, W)``, the form the networks take (as if saved as PNG). The
reference that FID, KID and precision/recall compare with is a second input, or a data set split
(``--reference fashion-mnist-test``, ``mnist-train``, ``cifar10-train``, ... read with
:func:`improved_gan.data.load_dataset`; ``ring8`` / ``grid25``: points drawn from the mixture).

Metrics (:data:`METRICS`), each a pure function of features or probabilities from :mod:`improved_gan.metrics`:

- ``is``: the paper's Inception Score (paper §4), 2015 Inception-v3 probabilities, in-order splits;
- ``fid``, ``kid``, ``pr``: Frechet distance, KID and improved precision/recall of Inception-v3 pool features
  (2048-d) against the reference's;
- ``classifier_score``, ``classifier_fd``, ``classifier_kid``, ``classifier_pr``: the same on the small
  Fashion-MNIST/MNIST classifier (:mod:`improved_gan.metrics.classifier`; 28x28 grey images only); without a
  reference, ``classifier_fd`` uses the test statistics stored in the classifier file and ``classifier_kid``
  / ``classifier_pr`` the classifier's test set.

Feature arrays ``(N, D)`` take ``fid``, ``kid`` and ``pr`` directly on their rows. Too few samples are refused:
fewer than ``splits`` for a score, no more than D for a Frechet distance (a covariance of N samples in D
dimensions is singular when N <= D), fewer than the KID subset size, no more than k for precision/recall.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from improved_gan.errors import UserError

#: Metric name -> what it is (the table's last column).
METRICS = {
    "is": "Inception Score, 2015 Inception-v3 (higher is better; paper §4)",
    "fid": "Frechet distance of Inception pool features to the reference (lower is better)",
    "kid": "Kernel Inception Distance, unbiased MMD^2 of pool features (lower is better; ~0 = same)",
    "pr": "precision: share of samples on the reference manifold; recall: share of reference covered",
    "classifier_score": "Inception Score formula on the Fashion-MNIST/MNIST classifier (higher is better)",
    "classifier_fd": "Frechet distance of the classifier's features to the reference (lower is better)",
    "classifier_kid": "KID of the classifier's features (lower is better; ~0 = same)",
    "classifier_pr": "precision and recall in the classifier's feature space (k=3 neighbours)",
}
_ALIASES = {"classifier_fid": "classifier_fd", "inception_score": "is", "precision_recall": "pr"}
_INCEPTION = ("is", "fid", "kid", "pr")
_NEEDS_REFERENCE = ("fid", "kid", "pr")
RANGES = {"0,255": (0.0, 255.0), "0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0)}
LAYOUTS = ("nchw", "nhwc", "nhw")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INCEPTION_DIM = 2048
_TOLERANCE = 1e-3  # values this far outside a range are clipped, farther is an error


@dataclass
class Samples:
    """One loaded input: uint8 images (N, C, H, W) or float features (N, D), and how they were read."""

    source: str
    images: torch.Tensor | None = None
    features: np.ndarray | None = None
    how: str = ""
    dataset: str | None = None  # the data set of a reference split or a run, when known

    def __len__(self) -> int:
        return int(self.images.shape[0] if self.images is not None else self.features.shape[0])

    def describe(self) -> str:
        shape = tuple(self.images.shape if self.images is not None else self.features.shape)
        return f"{self.source}: {shape} {self.how}".strip()


# ------------------------------------------------------------------------------------------------------- inputs
def detect_range(x: np.ndarray, source: str) -> str:
    """The value range of an image array: ``"0,255"``, ``"0,1"`` or ``"-1,1"``; UserError when unclear.

    uint8 (and integer arrays within [0, 255]) are [0, 255]. Floats: any value below 0 (down to -1) means
    [-1, 1]; all values in [0, 1] mean [0, 1]; integral values up to 255 with a maximum of at least 2 mean
    [0, 255]; anything else (e.g. floats in [0, 1.5], or beyond 255) is ambiguous and needs ``--range``.
    """
    lo, hi = float(x.min()), float(x.max())
    hint = "pass --range 0,255, --range 0,1 or --range -1,1"
    if x.dtype == np.uint8:
        return "0,255"
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        if lo >= 0 and hi <= 255:
            return "0,255"
        raise UserError(f"{source}: integer values in [{lo:g}, {hi:g}], expected [0, 255]")
    if lo < 0:
        if lo >= -1 - _TOLERANCE and hi <= 1 + _TOLERANCE:
            return "-1,1"
        raise UserError(f"{source}: values in [{lo:.4g}, {hi:.4g}] fit no image range; {hint}")
    if hi <= 1 + _TOLERANCE:
        return "0,1"
    if hi >= 2 and hi <= 255 and np.all(x == np.round(x)):
        return "0,255"
    raise UserError(f"{source}: float values in [{lo:.4g}, {hi:.4g}] are ambiguous; {hint}")


def to_uint8_images(x: np.ndarray, value_range: str, source: str) -> np.ndarray:
    """An image array in ``value_range`` -> uint8 in [0, 255] (rounded); UserError if values lie outside."""
    lo, hi = RANGES[value_range]
    vmin, vmax = float(x.min()), float(x.max())
    slack = _TOLERANCE * (hi - lo)
    if vmin < lo - slack or vmax > hi + slack:
        raise UserError(f"{source}: values in [{vmin:.4g}, {vmax:.4g}] lie outside --range {value_range}")
    if x.dtype == np.uint8:
        return x
    unit = (x.astype(np.float64) - lo) / (hi - lo)
    return np.round(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)


def _layout(shape: tuple[int, ...], layout: str | None, source: str) -> str:
    if layout is not None:
        want = 3 if layout == "nhw" else 4
        if len(shape) != want:
            raise UserError(f"{source}: --layout {layout} needs a {want}-d array, got shape {shape}")
        return layout
    if len(shape) == 3:
        return "nhw"
    channels_first, channels_last = shape[1] in (1, 3), shape[3] in (1, 3)
    if channels_first and channels_last:
        raise UserError(
            f"{source}: shape {shape} could be (N, C, H, W) or (N, H, W, C); pass --layout nchw or nhwc"
        )
    if channels_first:
        return "nchw"
    if channels_last:
        return "nhwc"
    raise UserError(
        f"{source}: shape {shape} is no image array: expected (N, H, W), (N, C, H, W) or (N, H, W, C) with "
        f"C = 1 or 3"
    )


def array_to_samples(x: np.ndarray, source: str, *, value_range=None, layout=None) -> Samples:
    """A user's array -> :class:`Samples` (uint8 images (N, C, H, W), or features for a 2-d array)."""
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise UserError(f"{source}: expected a numeric array, got dtype {x.dtype}")
    if x.size == 0 or x.shape[0] == 0:
        raise UserError(f"{source}: the array is empty (shape {x.shape})")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise UserError(f"{source}: the array has NaN or infinite values")
    if x.ndim == 2 and layout is None:
        return Samples(source, features=x.astype(np.float64), how="features (N, D)")
    if x.ndim not in (3, 4):
        raise UserError(
            f"{source}: shape {x.shape}: expected images (N, H, W), (N, C, H, W), (N, H, W, C) or features (N, D)"
        )
    lay = _layout(x.shape, layout, source)
    rng = value_range or detect_range(x, source)
    images = to_uint8_images(x, rng, source)
    if lay == "nhw":
        images = images[:, None]
    elif lay == "nhwc":
        images = images.transpose(0, 3, 1, 2)
    if images.shape[1] not in (1, 3):
        raise UserError(f"{source}: {images.shape[1]} channels, expected 1 (grey) or 3 (RGB)")
    how = f"{x.dtype} in [{rng.replace(',', ', ')}]{' (detected)' if value_range is None else ''}, {lay.upper()}"
    return Samples(source, images=torch.from_numpy(np.ascontiguousarray(images)), how=how)


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
    run_dir, *, num: int, seed: int = 0, device: str = "cpu", batch_size: int = 500
) -> Samples:
    """``num`` samples from a run's ``generator.pt``: uint8 images (N, C, H, W), or points (N, 2) for 2-D data."""
    from improved_gan.data import is_toy, to_unit
    from improved_gan.training.evaluate import load_generator

    g, cfg = load_generator(run_dir, device=device)
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, num, batch_size):
        z = g.sample_z(min(batch_size, num - start), generator=gen).to(device)
        parts.append(g(z).float().cpu())
    x = torch.cat(parts)
    how = f"{num} samples of its generator (seed {seed})"
    if is_toy(cfg.data.dataset):
        return Samples(str(run_dir), features=x.double().numpy(), how=how, dataset=cfg.data.dataset)
    images = torch.round(to_unit(cfg.data.dataset, x) * 255).to(torch.uint8)  # (N, C, H, W)
    return Samples(str(run_dir), images=images, how=how, dataset=cfg.data.dataset)


def load_input(
    path, *, value_range=None, layout=None, key=None, num: int = 10_000, seed: int = 0, device: str = "cpu"
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


def _is_split_name(name: str) -> bool:
    from improved_gan.data import IMAGE_DATASETS

    base, _, split = name.lower().rpartition("-")
    base = {"fmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist"}.get(base, base)
    return split in ("train", "test") and base in IMAGE_DATASETS


def load_reference(
    name: str, *, data_dir=None, num: int | None = None, seed: int = 0, n_points: int = 0
) -> Samples:
    """A reference by name: ``DATASET-SPLIT`` (``fashion-mnist-test``, ``cifar10-train``, ...; ``fmnist`` works
    too), read with :func:`improved_gan.data.load_dataset`, optionally a seeded random subset of ``num``
    images; or ``ring8`` / ``grid25``: ``n_points`` points of the mixture (seed 1,000,003)."""
    from improved_gan.data import IMAGE_DATASETS, load_dataset
    from improved_gan.data.toy import TOY_DATASETS

    low = name.lower()
    if low in TOY_DATASETS:
        from improved_gan.data import load_toy
        from improved_gan.metrics.registry import REFERENCE_SEED

        pts = load_toy(low).sample(num or n_points, torch.Generator().manual_seed(REFERENCE_SEED))
        return Samples(name, features=pts.double().numpy(), how="points of the mixture", dataset=low)
    base, _, split = low.rpartition("-")
    base = {"fmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist"}.get(base, base)
    if split not in ("train", "test") or base not in IMAGE_DATASETS:
        names = [f"{d}-{s}" for d in IMAGE_DATASETS for s in ("train", "test")] + list(TOY_DATASETS)
        raise UserError(f"--reference {name}: expected one of {', '.join(names)}")
    data = load_dataset(base, data_dir=data_dir)
    images = data.train_images if split == "train" else data.test_images  # (N, C, H, W) uint8
    how = f"{split} split of {data.source}"
    if num is not None and num < images.shape[0]:
        idx = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:num]
        images, how = images[idx], how + f", random {num} (seed {seed})"
    return Samples(name, images=images, how=how, dataset=base)


# ------------------------------------------------------------------------------------------------------ scoring
@dataclass
class _Extractors:
    """The feature networks, loaded on first use, and their outputs per input (computed once)."""

    device: str
    inception_weights: str | None
    inception_backend: str
    classifier: str
    batch_size: int
    _inception: Any = None
    _classifier: Any = None
    _cache: dict = field(default_factory=dict)

    def inception(self, s: Samples) -> tuple[np.ndarray, np.ndarray]:
        """(pool features (N, 2048), probabilities (N, 1008)), float64."""
        if s.images is None:
            raise UserError(f"{s.source}: Inception metrics need images, got features {s.features.shape}")
        key = ("inception", id(s))
        if key not in self._cache:
            if self._inception is None:
                from improved_gan.metrics.inception import InceptionScorer

                self._inception = InceptionScorer(
                    self.inception_weights, device=self.device, backend=self.inception_backend
                )
            x = s.images if s.images.shape[1] == 3 else s.images.repeat(1, 3, 1, 1)  # grey -> RGB
            pool, logits = self._inception.features_and_logits(x, batch_size=self.batch_size)
            self._cache[key] = (pool.double().numpy(), logits.double().softmax(dim=1).numpy())
        return self._cache[key]

    def trained_classifier(self):
        if self._classifier is None:
            from improved_gan.metrics.classifier import load_classifier

            self._classifier = load_classifier(self.classifier, device=self.device)
        return self._classifier

    def classifier_outputs(self, s: Samples) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, 128), probabilities (N, 10)), float64."""
        if s.images is None or tuple(s.images.shape[1:]) != (1, 28, 28):
            got = tuple(s.images.shape) if s.images is not None else f"features {s.features.shape}"
            raise UserError(
                f"{s.source}: classifier metrics need 28x28 grey images (N, 1, 28, 28), got {got}; "
                f"use --metrics is,fid,kid,pr"
            )
        key = ("classifier", id(s))
        if key not in self._cache:
            probs, feats = self.trained_classifier().outputs(s.images.float() / 255, batch_size=500)
            self._cache[key] = (feats.numpy(), probs.numpy())
        return self._cache[key]


def _need(n: int, at_least: int, what: str, source: str, advice: str) -> None:
    if n < at_least:
        raise UserError(f"{source}: {n} samples, {what} needs at least {at_least}; {advice}")


def parse_metrics(text: str | None, first: Samples, has_reference: bool) -> tuple[str, ...]:
    """``--metrics a,b`` -> canonical names; the default depends on the input (module docstring)."""
    if text:
        names = []
        for raw in text.split(","):
            n = _ALIASES.get(raw.strip().lower(), raw.strip().lower())
            if not n:
                continue
            if n not in METRICS:
                raise UserError(
                    f"--metrics {raw.strip()}: unknown metric; expected some of {', '.join(METRICS)}"
                )
            if n not in names:
                names.append(n)
        if not names:
            raise UserError("--metrics: no metric named")
        return tuple(names)
    if first.images is None:
        return ("fid", "kid", "pr")
    if tuple(first.images.shape[1:]) == (1, 28, 28):
        return ("classifier_score", "classifier_fd", "classifier_kid", "classifier_pr")
    return ("is", "fid", "kid", "pr") if has_reference else ("is",)


def score(
    first: Samples,
    reference: Samples | None,
    metrics: tuple[str, ...],
    *,
    splits: int = 10,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    k: int = 3,
    bootstrap: int = 0,
    seed: int = 0,
    device: str = "cpu",
    inception_weights=None,
    inception_backend: str = "auto",
    classifier: str = "fashion-mnist",
    data_dir=None,
    batch_size: int = 50,
) -> dict[str, Any]:
    """The ``metrics`` of ``first`` against ``reference`` -> ``{"values": {...}, "intervals": {...}}``.

    ``intervals`` (only with ``bootstrap`` replicates) holds a 95% interval per value from random halves of the
    inputs, centred on the value (:func:`improved_gan.metrics.bootstrap_interval`, ``method="half"``). Raises UserError for too few samples (module docstring).
    """
    from improved_gan.metrics import (
        bootstrap_interval,
        frechet_distance,
        gaussian_statistics,
        inception_score,
        kernel_inception_distance,
        precision_recall,
    )

    ex = _Extractors(str(device), inception_weights, inception_backend, classifier, batch_size)
    values: dict[str, float] = {}
    intervals: dict[str, list[float]] = {}

    def interval(keys, fn, *arrays, at_least: int = 4, what: str = "", sources=()):
        # the replicates are random halves (bootstrap_interval's default): each half must still be enough
        if not bootstrap:
            return
        for a, src in zip(arrays, sources or (first.source,), strict=False):
            if len(a) // 2 < at_least:
                raise UserError(
                    f"{src}: {len(a)} samples, so the random halves of --bootstrap have {len(a) // 2}; "
                    f"{what or keys[0]} needs at least {at_least}; use more samples or leave out --bootstrap"
                )
        estimate = tuple(values[k] for k in keys)  # computed above: not again on the full data
        cis = bootstrap_interval(fn, *arrays, n=bootstrap, seed=seed, estimate=estimate)
        for key, ci in zip(keys, cis, strict=True):
            intervals[key] = [ci[0], ci[1]]

    ref_for_classifier = reference
    for name in metrics:
        if name in _NEEDS_REFERENCE and reference is None:
            raise UserError(f"metric {name} compares with a reference: give INPUT2 or --reference NAME")
        if name in ("classifier_kid", "classifier_pr") and ref_for_classifier is None:
            from improved_gan.metrics.classifier import canonical_dataset

            ref_for_classifier = load_reference(f"{canonical_dataset(classifier)}-test", data_dir=data_dir)

    for name in metrics:
        inception = name in _INCEPTION
        if name in ("is", "classifier_score"):
            probs = ex.inception(first)[1] if inception else ex.classifier_outputs(first)[1]
            _need(len(probs), splits, f"{name} with --splits {splits}", first.source, "pass fewer --splits")
            mean, std = inception_score(probs, splits=splits)
            values.update({name: mean, f"{name}_std": std})
            interval(
                [name],
                lambda p: inception_score(p, splits=splits)[0],
                probs,
                at_least=splits,
                what=f"{name} with --splits {splits}",
            )
            continue
        ref = reference if inception or name == "classifier_fd" else ref_for_classifier
        if first.images is None or (ref is not None and ref.images is None):  # feature arrays
            if inception is False:
                raise UserError(f"metric {name} needs images; for feature arrays use --metrics fid,kid,pr")
            if first.images is not None or ref.images is not None:
                raise UserError(
                    f"{first.source} and {ref.source}: compare images with images, features with features"
                )
            f1, f2 = first.features, ref.features
            if f1.shape[1] != f2.shape[1]:
                raise UserError(f"{first.source} has {f1.shape[1]} features, {ref.source} {f2.shape[1]}")
        elif inception:
            f1, f2 = ex.inception(first)[0], ex.inception(ref)[0]
        else:
            f1 = ex.classifier_outputs(first)[0]
            f2 = ex.classifier_outputs(ref)[0] if ref is not None else None
        if name in ("fid", "classifier_fd"):
            d = f1.shape[1]
            for s, f in ((first, f1), (ref, f2)):
                if f is not None:
                    _need(
                        len(f),
                        d + 1,
                        f"{name} (a covariance of {d} feature dimensions is singular with N <= {d})",
                        s.source,
                        "use more samples (FD is also biased for small N: compare at equal N), or kid",
                    )
            if f2 is None:  # the classifier file's test statistics
                trained = ex.trained_classifier()
                mu2, sigma2 = trained.test_mu.numpy(), trained.test_sigma.numpy()

                def fd(a, mu2=mu2, sigma2=sigma2):
                    return frechet_distance(*gaussian_statistics(a), mu2, sigma2)

                values[name] = fd(f1)
                interval([name], fd, f1, at_least=d + 1, what=f"{name} ({d} feature dimensions)")
            else:

                def fd2(a, b):
                    return frechet_distance(*gaussian_statistics(a), *gaussian_statistics(b))

                values[name] = fd2(f1, f2)
                interval(
                    [name],
                    fd2,
                    f1,
                    f2,
                    at_least=d + 1,
                    what=f"{name} ({d} feature dimensions)",
                    sources=(first.source, ref.source),
                )
        elif name in ("kid", "classifier_kid"):
            for s, f in ((first, f1), (ref, f2)):
                _need(
                    len(f),
                    kid_subset_size,
                    f"{name} with subsets of {kid_subset_size}",
                    s.source,
                    "pass a smaller --kid-subset-size",
                )

            def kid(a, b):
                return kernel_inception_distance(a, b, subsets=kid_subsets, subset_size=kid_subset_size)

            mean, std = kid(f1, f2)
            values.update({name: mean, f"{name}_std": std})
            interval(
                [name],
                lambda a, b: kid(a, b)[0],
                f1,
                f2,
                at_least=kid_subset_size,
                what=f"{name} with subsets of {kid_subset_size}",
                sources=(first.source, ref.source),
            )
        else:  # pr, classifier_pr
            for s, f in ((first, f1), (ref, f2)):
                _need(len(f), k + 1, f"{name} with k={k}", s.source, "use more samples")
            prefix = "" if name == "pr" else "classifier_"
            p, r = precision_recall(f2, f1, k=k)
            values.update({f"{prefix}precision": p, f"{prefix}recall": r})
            interval(
                [f"{prefix}precision", f"{prefix}recall"],
                lambda a, b: precision_recall(b, a, k=k),
                f1,
                f2,
                at_least=k + 1,
                what=f"{name} with k={k}",
                sources=(first.source, ref.source),
            )
    return {"values": values, "intervals": intervals}


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
        base = key.replace("precision", "pr").replace("recall", "pr")
        meaning = METRICS.get(base, METRICS.get(key, ""))
        rows.append((key, text, f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "", meaning))
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


def run_score(args) -> int:
    """The ``improved-gan score`` command (cli.py registers its options)."""
    from improved_gan.training.checkpoint import atomic_write_json

    if args.inception_weights is not None and not Path(args.inception_weights).expanduser().is_file():
        from improved_gan.metrics.inception import WEIGHTS_NAME, weights_search_path

        raise UserError(
            f"--inception-weights {args.inception_weights}: no such file; expected torch-fidelity's "
            f"{WEIGHTS_NAME} (or put it at {weights_search_path()[0]})"
        )
    if args.input2 is not None and args.reference is not None:
        raise UserError("give either INPUT2 or --reference, not both")
    common = dict(
        value_range=args.range,
        layout=args.layout,
        key=args.key,
        num=args.num,
        seed=args.seed,
        device=args.device,
    )
    if not Path(args.input).exists() and _is_split_name(args.input):  # e.g. fashion-mnist-test: real data
        first = load_reference(args.input, data_dir=args.data_dir)
    else:
        first = load_input(args.input, **common)
    reference = None
    if args.input2 is not None:
        reference = load_input(args.input2, **common)
    elif args.reference is not None:
        reference = load_reference(
            args.reference,
            data_dir=args.data_dir,
            num=args.num_reference,
            seed=args.seed,
            n_points=len(first),
        )
    metrics = parse_metrics(args.metrics, first, reference is not None)
    result = score(
        first,
        reference,
        metrics,
        splits=args.splits,
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
        bootstrap=args.bootstrap or 0,
        seed=args.seed,
        device=args.device,
        inception_weights=args.inception_weights,
        inception_backend=args.inception_backend,
        classifier=args.classifier,
        data_dir=args.data_dir,
    )
    print(f"input:     {first.describe()}")
    if reference is not None:
        print(f"reference: {reference.describe()}")
    print(format_table(result))
    out = {
        "input": first.source,
        "num_samples": len(first),
        "reference": reference.source if reference is not None else None,
        "num_reference": len(reference) if reference is not None else None,
        "metrics": list(metrics),
        "settings": {
            "splits": args.splits,
            "kid_subsets": args.kid_subsets,
            "kid_subset_size": args.kid_subset_size,
            "k": 3,
            "bootstrap": args.bootstrap or 0,
            "seed": args.seed,
            "classifier": args.classifier,
        },
        **result,
    }
    if args.out:
        atomic_write_json(args.out, out)
        print(f"wrote {args.out}")
    return 0


def write_samples_npz(run_dir, *, num: int, out, seed: int = 0, device: str = "cpu") -> Samples:
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
    "METRICS",
    "Samples",
    "array_to_samples",
    "detect_range",
    "format_table",
    "generate_from_run",
    "load_input",
    "load_reference",
    "score",
    "write_samples_npz",
]
