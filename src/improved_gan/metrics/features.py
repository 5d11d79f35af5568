"""Feature extractors: one in-process cache of the networks, bounded-memory batches, shards across ranks.

Two networks turn images into what the metrics compare (paper §4 and README, "Scoring your own samples"):

- :func:`classifier`: the small Fashion-MNIST / MNIST classifier (:mod:`.classifier`): 28x28 grey images ->
  features ``(N, F)`` (F = 128 for the shipped network) and class probabilities ``(N, 10)``;
- :func:`inception`: the 2015 Inception-v3 graph (:mod:`.inception`): RGB images (grey ones are repeated to
  three channels) -> pool features ``(N, 2048)`` and probabilities ``(N, 1008)``.

Each is built once per process for one (file, modification time, device[, backend]). :func:`extract` feeds
uint8 images ``(N, C, H, W)`` in batches of ``batch_size``, so only one batch is ever converted to float and
resized (to 299x299 for Inception): memory is bounded by the batch, not N. With ``shard=True`` under an
initialised :mod:`torch.distributed` group of W > 1 processes, rank r computes the rows
``[r N / W, (r + 1) N / W)`` and the rows are all-gathered in order, so every rank gets the features of all N
samples (equal to one process's up to the float rounding of a different batch composition). Every rank must
then call with the same images.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

#: Default batch sizes (the classifier is small; Inception at 299x299 holds ~0.5 GB of activations per 50)
CLASSIFIER_BATCH = 500
INCEPTION_BATCH = 50


def _mtime(path) -> float:
    return os.stat(path).st_mtime if path is not None and os.path.exists(path) else 0.0


@functools.lru_cache(maxsize=2)
def _classifier(dataset: str, path: str, mtime: float, device: str):
    from improved_gan.metrics.classifier import load_classifier

    return load_classifier(dataset, path, device=device)


@functools.lru_cache(maxsize=1)
def _inception(path: str, mtime: float, device: str, backend: str):
    from improved_gan.metrics import inception as inception_mod

    return inception_mod.InceptionScorer(path, device=device, backend=backend)


def classifier(dataset: str, path=None, *, device="cpu"):
    """The :class:`~improved_gan.metrics.classifier.TrainedClassifier` of ``dataset`` (file ``path``, default
    :func:`~improved_gan.metrics.classifier.classifier_path`), cached per (file, modification time, device)."""
    from improved_gan.metrics.classifier import canonical_dataset, classifier_path

    name = canonical_dataset(dataset)
    resolved = str(path) if path is not None else str(classifier_path(name))
    return _classifier(name, resolved, _mtime(resolved), str(device))


def inception(weights=None, *, device="cpu", backend: str = "auto"):
    """The :class:`~improved_gan.metrics.inception.InceptionScorer` for ``weights`` (resolved as
    :func:`~improved_gan.metrics.inception.resolve_inception_weights` does), cached per (file, modification
    time, device, backend)."""
    from improved_gan.metrics.inception import resolve_inception_weights

    path = str(resolve_inception_weights(weights))
    return _inception(path, _mtime(path), str(device), backend)


def clear_cache() -> None:
    """Forget the cached networks (tests; a process that replaced a weights file in place)."""
    _classifier.cache_clear()
    _inception.cache_clear()
    _file_hash.cache_clear()


@functools.lru_cache(maxsize=8)
def _file_hash(path: str, mtime: float, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def weights_hash(path) -> str:
    """The first 16 hex digits of the SHA-256 of a weights file (computed once per file version)."""
    p = str(path)
    st = os.stat(p)
    return _file_hash(p, st.st_mtime, st.st_size)


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_rows(local: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """All-gather each rank's rows (counts[r] of them) in rank order; padded to one size for the collective."""
    import torch.distributed as dist

    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    buf = torch.zeros((max(counts), *local.shape[1:]), dtype=local.dtype, device=device)
    buf[: local.shape[0]] = local.to(device)
    parts = [torch.empty_like(buf) for _ in counts]
    dist.all_gather(parts, buf)
    return torch.cat([p[:c].cpu() for p, c in zip(parts, counts, strict=True)])


def extract(
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
    images: torch.Tensor,
    *,
    batch_size: int,
    shard: bool = False,
) -> tuple[np.ndarray, ...]:
    """``fn`` over ``images`` (N, ...) in batches -> its outputs concatenated over rows, float64 numpy arrays.

    ``shard=True`` under torch.distributed (W > 1 processes, N >= W): each rank runs its contiguous share of
    the rows and all ranks gather every row (module docstring).
    """
    n = images.shape[0]
    rank, world = _rank_world() if shard else (0, 1)
    if world > 1 and n < world:
        rank, world = 0, 1
    lo, hi = n * rank // world, n * (rank + 1) // world
    parts = [fn(images[s : min(s + batch_size, hi)]) for s in range(lo, hi, batch_size)]
    local = [torch.cat(outs) for outs in zip(*parts, strict=True)]
    if world > 1:
        counts = [n * (r + 1) // world - n * r // world for r in range(world)]
        local = [_gather_rows(t, counts) for t in local]
    return tuple(t.double().numpy() for t in local)


def classifier_outputs(trained, images: torch.Tensor, *, batch_size=None, shard=False):
    """uint8 images (N, C, 28, 28) -> (features (N, F), probabilities (N, K)), float64."""

    def fn(batch):
        probs, feats = trained.outputs(batch.float() / 255, batch_size=batch.shape[0])
        return feats, probs

    return extract(fn, images, batch_size=batch_size or CLASSIFIER_BATCH, shard=shard)


def inception_outputs(scorer, images: torch.Tensor, *, batch_size=None, shard=False):
    """uint8 images (N, C, H, W), C = 1 or 3 -> (pool features (N, 2048), probabilities (N, 1008)), float64."""

    def fn(batch):
        rgb = batch if batch.shape[1] == 3 else batch.repeat(1, 3, 1, 1)  # grey -> RGB, one batch at a time
        pool, logits = scorer.features_and_logits(rgb, batch_size=rgb.shape[0])
        return pool, logits.double().softmax(dim=1)

    return extract(fn, images, batch_size=batch_size or INCEPTION_BATCH, shard=shard)


def extractor_id(space: str, *, dataset=None, classifier_path=None, inception_weights=None) -> str:
    """``space:weights-hash`` of the network that makes features in ``space`` (for the on-disk cache key)."""
    if space == "classifier":
        from improved_gan.metrics.classifier import canonical_dataset
        from improved_gan.metrics.classifier import classifier_path as default_path

        path = classifier_path if classifier_path is not None else default_path(canonical_dataset(dataset))
        return f"classifier:{weights_hash(Path(path))}"
    from improved_gan.metrics.inception import resolve_inception_weights

    return f"inception:{weights_hash(resolve_inception_weights(inception_weights))}"
