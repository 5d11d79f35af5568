"""Real-data references: data-set splits, 2-D mixture points, and the on-disk cache of their features.

A reference is named ``DATASET-SPLIT`` (``fashion-mnist-test``, ``cifar10-train``; every spelling of the one
alias table :mod:`improved_gan._dataset_names` works: ``fmnist-test``, ``cifar-10-train``) or ``ring8`` /
``grid25`` (points drawn from the mixture with the fixed seed :data:`REFERENCE_SEED`).

Features of a split (:func:`split_features`) are cached on disk under :func:`cache_dir` (``$IMPROVED_GAN_CACHE``,
else ``~/.cache/improved-gan``), in ``references/``, one ``.npz`` per key: the data set, split, count, subset
seed, feature space, the extractor's weights hash and a digest of the images themselves. An entry is written
atomically (a temporary file, then a rename) with the SHA-256 of its array; an entry that cannot be read, whose
key differs or whose checksum does not match is reported (a :class:`ReferenceCacheWarning`), deleted and
rebuilt, never used. Scoring a second model against ``cifar10-train`` so reads 50,000 x 2048 features instead
of running Inception over 50,000 images again.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from improved_gan._dataset_names import IMAGE_DATASETS, TOY_DATASET_NAMES, canonical_dataset_name
from improved_gan.errors import UserError
from improved_gan.metrics.inputs import Samples

#: Seed of the mixture points that 2-D samples are compared with.
REFERENCE_SEED = 1_000_003
SPLITS = ("train", "test")
ENV_CACHE = "IMPROVED_GAN_CACHE"
_FORMAT = "improved-gan-reference-features-v1"


class ReferenceCacheWarning(UserWarning):
    """A cache entry was unreadable or corrupt and is being rebuilt."""


def reference_names() -> list[str]:
    """Every canonical reference name, for error messages."""
    return [f"{d}-{s}" for d in IMAGE_DATASETS for s in SPLITS] + list(TOY_DATASET_NAMES)


def parse_reference(name: str) -> tuple[str, str | None]:
    """``"fmnist-test"`` -> ``("fashion-mnist", "test")``, ``"ring8"`` -> ``("ring8", None)``; UserError
    naming the accepted forms otherwise."""
    low = str(name).strip().lower()
    try:
        if canonical_dataset_name(low) in TOY_DATASET_NAMES:
            return canonical_dataset_name(low), None
    except UserError:
        pass
    base, _, split = low.rpartition("-")
    try:
        dataset = canonical_dataset_name(base) if base else None
    except UserError:
        dataset = None
    if split not in SPLITS or dataset not in IMAGE_DATASETS:
        raise UserError(
            f"reference {name!r}: expected one of {', '.join(reference_names())} (data-set aliases such as "
            f"fmnist-test or cifar-10-train work too)"
        )
    return dataset, split


def is_reference_name(name: str) -> bool:
    """Whether ``name`` parses as a reference (:func:`parse_reference`)."""
    try:
        parse_reference(name)
    except UserError:
        return False
    return True


def mixture_points(dataset: str, n: int) -> torch.Tensor:
    """``n`` points (n, 2) of the 2-D mixture ``dataset`` drawn with :data:`REFERENCE_SEED`."""
    return _mixture_points(canonical_dataset_name(dataset), int(n)).clone()


@functools.lru_cache(maxsize=2)
def _mixture_points(dataset: str, n: int) -> torch.Tensor:
    from improved_gan.data import load_toy

    return load_toy(dataset).sample(n, torch.Generator().manual_seed(REFERENCE_SEED))


def load_split(
    name: str, *, data_dir=None, num: int | None = None, seed: int = 0, n_points: int = 0
) -> Samples:
    """The reference ``name`` as :class:`~improved_gan.metrics.inputs.Samples`: a split's uint8 images (N, C, H, W) read with
    :func:`improved_gan.data.load_dataset`, optionally a seeded random subset of ``num`` images
    (``torch.randperm`` with ``seed``); or ``num or n_points`` points of a 2-D mixture."""
    dataset, split = parse_reference(name)
    if split is None:
        pts = mixture_points(dataset, num or n_points)
        return Samples(name, features=pts.double().numpy(), how="points of the mixture", dataset=dataset)
    from improved_gan.data import load_dataset

    data = load_dataset(dataset, data_dir=data_dir)
    images = data.train_images if split == "train" else data.test_images  # (N, C, H, W) uint8
    how, subset = f"{split} split of {getattr(data, 'source', dataset)}", None
    if num is not None and num < images.shape[0]:
        idx = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:num]
        images, how, subset = images[idx], how + f", random {num} (seed {seed})", (num, seed)
    return Samples(name, images=torch.as_tensor(images), how=how, dataset=dataset, split=split, subset=subset)


# ------------------------------------------------------------------------------------------- on-disk cache
def cache_dir() -> Path:
    """``$IMPROVED_GAN_CACHE``, else ``~/.cache/improved-gan``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "improved-gan"


def images_digest(images: torch.Tensor) -> str:
    """A short BLAKE2 digest of uint8 images, so a cache entry never outlives a change of the data files."""
    return hashlib.blake2b(np.ascontiguousarray(images.numpy()).tobytes(), digest_size=8).hexdigest()


def _entry_path(key: dict) -> Path:
    text = json.dumps(key, sort_keys=True)
    return cache_dir() / "references" / (hashlib.sha256(text.encode()).hexdigest()[:24] + ".npz")


def _checksum(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def read_cached(key: dict) -> np.ndarray | None:
    """The cached array of ``key``, or None if absent; a corrupt entry warns, is deleted, and gives None."""
    path = _entry_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            array = f["features"]
        ok = (
            meta.get("format") == _FORMAT
            and meta.get("key") == key
            and meta.get("sha256") == _checksum(array)
        )
    except Exception:  # truncated, foreign, or not an npz at all
        ok = False
    if ok:
        return array
    warnings.warn(
        f"reference cache entry {path} is corrupt; rebuilding it", ReferenceCacheWarning, stacklevel=2
    )
    path.unlink(missing_ok=True)
    return None


def write_cached(key: dict, array: np.ndarray) -> Path:
    """Write ``array`` under ``key`` atomically (temporary file in the same folder, then a rename)."""
    path = _entry_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"format": _FORMAT, "key": key, "sha256": _checksum(array)})
    buf = io.BytesIO()
    np.savez(buf, features=array, meta=np.array(meta))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def split_features(reference: Samples, space: str, extractor: str, compute) -> np.ndarray:
    """The features (N, D) of a data-set split in ``space`` by ``extractor`` (:func:`.features.extractor_id`),
    from the on-disk cache, else ``compute()`` (then cached; rank 0 writes under torch.distributed)."""
    from improved_gan.metrics.features import _rank_world

    key = {
        "dataset": reference.dataset,
        "split": reference.split,
        "count": len(reference),
        "subset": None if reference.subset is None else list(reference.subset),
        "space": space,
        "extractor": extractor,
        "images": images_digest(reference.images),
    }
    cached = read_cached(key)
    if cached is not None:
        return cached
    array = np.asarray(compute(), dtype=np.float64)
    if _rank_world()[0] == 0:
        write_cached(key, array)
    return array
