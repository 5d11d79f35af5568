"""The metric registry shared by the training loop (periodic evaluation) and ``improved-gan evaluate``.

A metric is a name mapped to a function of the generated samples; the networks that turn samples into
probabilities or features are adapters (:mod:`.classifier`, :mod:`.inception`) and the formulas are pure
functions (:func:`~improved_gan.metrics.inception_score`, :func:`~improved_gan.metrics.frechet_distance`,
:func:`~improved_gan.metrics.mode_coverage.mode_statistics`).

| metric (data sets)                           | keys                    | what it is                      |
|----------------------------------------------|-------------------------|---------------------------------|
| classifier_score (fashion-mnist, mnist)      | classifier_score, *_std | IS formula, own classifier      |
| classifier_fid (fashion-mnist, mnist)        | classifier_fid          | FD of its features to test set  |
| classifier_kid (fashion-mnist, mnist)        | classifier_kid, *_std   | KID of its features to test set |
| classifier_pr (fashion-mnist, mnist)         | classifier_precision, classifier_recall | k-NN manifolds |
| inception_score (cifar10, svhn)              | inception_score, *_std  | the paper's IS (paper §4) |
| modes, high_quality, mode_kl (ring8, grid25) | the same names          | :mod:`.mode_coverage`           |
| kid, pr (ring8, grid25)                      | kid, kid_std, precision, recall | on the points themselves |

KID (:mod:`.kid`) and improved precision/recall (:mod:`.precision_recall`) compare the samples with a reference
set: for the 28x28 sets the classifier features of the real TEST set (read from the data files through
:func:`improved_gan.data.load_dataset` with ``data_dir``, once per process), for the 2-D mixtures
``num_samples`` points drawn from the mixture with a fixed seed (:data:`REFERENCE_SEED`). KID uses subsets of
``min(1000, N, N_ref)`` rows so that it works for the few samples of a quick check.

Samples are images in [0, 1], float (N, C, H, W), or points (N, 2) for the 2-D mixtures. Scores split the N
samples in order into ``splits`` (10) parts; the Frechet distance is biased in N, so compare runs (and the
real-data ceiling) at the same ``num_samples`` (:func:`default_num_samples`). Options (keyword arguments):
``classifier_path``, ``inception_weights``, ``inception_backend``, ``batch_size``, ``splits``, ``num_std``,
``min_count``. Loaded networks are cached per (file, modification time, device), so periodic evaluation
reloads nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from improved_gan._dataset_names import DATASET_ALIASES as _ALIASES
from improved_gan.errors import UserError
from improved_gan.metrics.kid import SUBSET_SIZE, SUBSETS, kernel_inception_distance
from improved_gan.metrics.mode_coverage import mode_statistics
from improved_gan.metrics.precision_recall import precision_recall

#: Seed of the mixture points the 2-D samples are compared with by ``kid`` and ``pr``.
REFERENCE_SEED = 1_000_003

_DEFAULTS = {  # data set -> (default metrics, default number of samples)
    "fashion-mnist": (("classifier_score", "classifier_fid", "classifier_kid", "classifier_pr"), 10_000),
    "mnist": (("classifier_score", "classifier_fid", "classifier_kid", "classifier_pr"), 10_000),
    "cifar10": (("inception_score",), 50_000),
    "svhn": (("inception_score",), 50_000),
    "ring8": (("high_quality", "modes", "mode_kl", "pr", "kid"), 2_500),
    "grid25": (("high_quality", "modes", "mode_kl", "pr", "kid"), 2_500),
}
_OPTIONS = {
    "classifier_path",
    "inception_weights",
    "inception_backend",
    "batch_size",
    "splits",
    "num_std",
    "min_count",
    "kid_subsets",
    "k",
}


def canonical_dataset(name: str) -> str:
    """The registry's name for a data set (``fmnist`` -> ``fashion-mnist``); UserError if unknown."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _DEFAULTS:
        raise UserError(
            f"no metrics for data set {name!r}; expected one of {', '.join(_DEFAULTS)} "
            f"(aliases: {', '.join(_ALIASES)})"
        )
    return key


def default_metrics(dataset: str) -> tuple[str, ...]:
    """The metrics evaluated for ``dataset`` when none are named."""
    return _DEFAULTS[canonical_dataset(dataset)][0]


def default_num_samples(dataset: str) -> int:
    """Samples per evaluation: the test-set size for 28x28 sets, 50,000 (the paper's) for IS, 2,500 in 2-D."""
    return _DEFAULTS[canonical_dataset(dataset)][1]


@functools.lru_cache(maxsize=2)
def _cached_classifier(dataset: str, path: str | None, mtime: float, device: str):
    from improved_gan.metrics.classifier import load_classifier

    return load_classifier(dataset, path, device=device)


@functools.lru_cache(maxsize=1)
def _cached_inception(path: str, mtime: float, device: str, backend: str):
    from improved_gan.metrics.inception import InceptionScorer

    return InceptionScorer(path, device=device, backend=backend)


@functools.lru_cache(maxsize=2)
def _cached_test_features(dataset: str, path: str, mtime: float, device: str, data_dir: str | None):
    """The classifier features (N_test, F) of the real test set of ``dataset``, float64."""
    from improved_gan.data import load_dataset

    trained = _cached_classifier(dataset, path, mtime, device)
    test = load_dataset(dataset, data_dir=data_dir).test_images  # (N, 1, 28, 28) uint8
    return trained.outputs(test.float() / 255)[1]


@functools.lru_cache(maxsize=2)
def _cached_mixture_points(dataset: str, n: int):
    from improved_gan.data import load_toy

    return load_toy(dataset).sample(n, torch.Generator().manual_seed(REFERENCE_SEED))  # (n, 2)


def _mtime(path) -> float:
    return os.stat(path).st_mtime if path is not None and os.path.exists(path) else 0.0


class _Context:
    """One evaluation: the samples and settings, plus network outputs shared by several metrics."""

    def __init__(self, samples, dataset, device, options, data_dir=None):
        self.samples, self.dataset, self.device, self.options = samples, dataset, str(device), options
        self.data_dir = None if data_dir is None else str(data_dir)
        self._cache: dict[str, object] = {}

    def once(self, key: str, fn: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def classifier(self):
        resolved = self._classifier_file()
        trained = _cached_classifier(self.dataset, resolved, _mtime(resolved), self.device)
        batch_size = self.options.get("batch_size", 500)
        return trained, self.once("classifier", lambda: trained.outputs(self.samples, batch_size=batch_size))

    def _classifier_file(self) -> str:
        from improved_gan.metrics.classifier import classifier_path

        path = self.options.get("classifier_path")
        return str(path) if path is not None else str(classifier_path(self.dataset))

    def features_and_reference(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(sample features, reference features) for KID and precision/recall (see the module docstring)."""
        if self.dataset in _TOY:
            return self.samples.double(), _cached_mixture_points(self.dataset, self.samples.shape[0]).double()
        _, (_, features) = self.classifier()
        path = self._classifier_file()
        ref = _cached_test_features(self.dataset, path, _mtime(path), self.device, self.data_dir)
        return features, ref

    def kid(self) -> tuple[float, float]:
        def compute():
            x, ref = self.features_and_reference()
            size = min(SUBSET_SIZE, x.shape[0], ref.shape[0])
            return kernel_inception_distance(
                x, ref, subsets=self.options.get("kid_subsets", SUBSETS), subset_size=size
            )

        return self.once("kid", compute)

    def precision_recall(self) -> tuple[float, float]:
        def compute():
            x, ref = self.features_and_reference()
            return precision_recall(ref, x, k=self.options.get("k", 3))

        return self.once("pr", compute)

    def modes(self) -> dict:
        from improved_gan.data import load_toy

        def compute():
            mixture = load_toy(self.dataset)
            kw = {k: self.options[k] for k in ("num_std", "min_count") if k in self.options}
            return mode_statistics(self.samples, mixture.centres, mixture.std, **kw)

        return self.once("modes", compute)


def _classifier_score(ctx: _Context) -> dict:
    trained, (probs, _) = ctx.classifier()
    mean, std = trained.score(probs, splits=ctx.options.get("splits", 10))
    return {"classifier_score": mean, "classifier_score_std": std}


def _classifier_fid(ctx: _Context) -> dict:
    trained, (_, features) = ctx.classifier()
    return {"classifier_fid": trained.frechet(features)}


def _kid(prefix: str) -> Callable[[_Context], dict]:
    def compute(ctx: _Context) -> dict:
        mean, std = ctx.kid()
        return {f"{prefix}kid": mean, f"{prefix}kid_std": std}

    return compute


def _pr(prefix: str) -> Callable[[_Context], dict]:
    def compute(ctx: _Context) -> dict:
        precision, recall = ctx.precision_recall()
        return {f"{prefix}precision": precision, f"{prefix}recall": recall}

    return compute


def _inception_score(ctx: _Context) -> dict:
    from improved_gan.metrics.inception import resolve_inception_weights

    weights = str(resolve_inception_weights(ctx.options.get("inception_weights")))
    backend = ctx.options.get("inception_backend", "auto")
    scorer = _cached_inception(weights, _mtime(weights), ctx.device, backend)
    mean, std = scorer.score(
        ctx.samples, splits=ctx.options.get("splits", 10), batch_size=ctx.options.get("batch_size", 50)
    )
    return {"inception_score": mean, "inception_score_std": std}


_GREY, _RGB, _TOY = ("fashion-mnist", "mnist"), ("cifar10", "svhn"), ("ring8", "grid25")


@dataclass(frozen=True)
class Metric:
    """A registered metric: the data sets it applies to, a description, its function of a context, and the
    keys of its result that tables report (``keys``; the metric's name when empty; ``*_std`` keys are not
    reported as columns)."""

    name: str
    datasets: tuple[str, ...]
    description: str
    compute: Callable[[_Context], dict]
    keys: tuple[str, ...] = ()

    @property
    def report_keys(self) -> tuple[str, ...]:
        return self.keys or (self.name,)


METRICS = {
    m.name: m
    for m in [
        Metric(
            "classifier_score",
            _GREY,
            "Inception Score formula on a classifier trained on the data set",
            _classifier_score,
        ),
        Metric(
            "classifier_fid",
            _GREY,
            "Frechet distance of the classifier's features to the real test set",
            _classifier_fid,
        ),
        Metric(
            "classifier_kid",
            _GREY,
            "KID (cubic-kernel unbiased MMD^2) of the classifier's features to the real test set's",
            _kid("classifier_"),
        ),
        Metric(
            "classifier_pr",
            _GREY,
            "improved precision and recall (k=3 nearest-neighbour manifolds) in the classifier's features",
            _pr("classifier_"),
            ("classifier_precision", "classifier_recall"),
        ),
        Metric(
            "inception_score",
            _RGB,
            "the paper's Inception Score (2015 Inception-v3, 1008 classes)",
            _inception_score,
        ),
        Metric(
            "modes",
            _TOY,
            "modes with a sample within 3 std of their centre",
            lambda ctx: {"modes": ctx.modes()["modes"]},
        ),
        Metric(
            "high_quality",
            _TOY,
            "fraction of samples within 3 std of a mode centre",
            lambda ctx: {"high_quality": ctx.modes()["high_quality"]},
        ),
        Metric(
            "mode_kl",
            _TOY,
            "KL(histogram of high-quality samples over modes || uniform)",
            lambda ctx: {"mode_kl": ctx.modes()["mode_kl"]},
        ),
        Metric(
            "pr",
            _TOY,
            "improved precision and recall of the points against mixture points (k=3 neighbour manifolds)",
            _pr(""),
            ("precision", "recall"),
        ),
        Metric("kid", _TOY, "KID (cubic-kernel unbiased MMD^2) of the points to mixture points", _kid("")),
    ]
}


def available_metrics() -> tuple[str, ...]:
    """The names of all registered metrics."""
    return tuple(METRICS)


def report_keys(dataset: str, names=None) -> tuple[str, ...]:
    """The result keys that tables report for the metrics ``names`` (None: :func:`default_metrics`) of
    ``dataset``, in order: e.g. ``("high_quality", "modes", "mode_kl", "precision", "recall", "kid")``."""
    names = default_metrics(dataset) if names is None else tuple(names)
    return tuple(k for n in names for k in METRICS[n].report_keys)


def _check_samples(samples, dataset: str) -> torch.Tensor:
    samples = torch.as_tensor(samples).detach()
    if dataset in _TOY and (samples.dim() != 2 or samples.shape[1] != 2):
        raise ValueError(f"{dataset} metrics take 2-D points (N, 2), got {tuple(samples.shape)}")
    if dataset not in _TOY and (samples.dim() != 4 or not samples.is_floating_point()):
        got = f"{samples.dtype} {tuple(samples.shape)}"
        raise ValueError(f"{dataset} metrics take float images (N, C, H, W) in [0, 1], got {got}")
    return samples


def compute_metrics(
    names, samples, *, dataset: str, data_dir=None, device="cpu", **options
) -> dict[str, float]:
    """Evaluate the metrics ``names`` (None: :func:`default_metrics`) on ``samples`` of ``dataset``.

    Returns a flat dict of floats (``modes`` is an int) in the order of ``names``; the keys are listed in the
    module docstring. ``data_dir`` is where ``classifier_kid`` and ``classifier_pr`` read the real test set
    (the others read no data files: the classifier file carries the test statistics). Raises UserError for an unknown metric
    or one that does not apply to ``dataset``, TypeError for an unknown option.
    """
    dataset = canonical_dataset(dataset)
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(f"compute_metrics got unknown options {sorted(unknown)}; expected {sorted(_OPTIONS)}")
    names = default_metrics(dataset) if names is None else tuple(names)
    for name in names:
        if name not in METRICS:
            raise UserError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
        if dataset not in METRICS[name].datasets:
            usable = ", ".join(m.name for m in METRICS.values() if dataset in m.datasets)
            raise UserError(f"metric {name!r} does not apply to data set {dataset}; use {usable}")
    ctx = _Context(_check_samples(samples, dataset), dataset, device, options, data_dir)
    results: dict[str, float] = {}
    for name in names:
        results.update(METRICS[name].compute(ctx))
    return results


def real_data_ceiling(
    dataset: str, names=None, *, num_samples=None, data_dir=None, device="cpu", seed=0, **options
) -> dict[str, float]:
    """The metrics of REAL data, the ceiling that generated samples are compared with.

    - ``classifier_score``: the first ``num_samples`` test images (the classifier never trained on them);
    - ``classifier_fid``, ``classifier_kid``, ``classifier_pr``: a seeded random subset of ``num_samples``
      training images against the test set, i.e. exactly the protocol applied to generated samples;
    - ``inception_score``: the first ``num_samples`` training images (the paper's 11.24 is CIFAR-10 train);
    - 2-D mixtures: ``num_samples`` points drawn from the mixture itself with ``torch.Generator(seed)``.
    """
    dataset = canonical_dataset(dataset)
    names = default_metrics(dataset) if names is None else tuple(names)
    n = num_samples or default_num_samples(dataset)
    common = dict(dataset=dataset, data_dir=data_dir, device=device, **options)
    if dataset in _TOY:
        from improved_gan.data import load_toy

        points = load_toy(dataset).sample(n, torch.Generator().manual_seed(seed))  # (n, 2)
        return compute_metrics(names, points, **common)
    from improved_gan.data import load_dataset

    data = load_dataset(dataset, data_dir=data_dir)
    results: dict[str, float] = {}
    for name in names:
        if name == "classifier_score":
            images = torch.as_tensor(data.test_images)[:n]
        elif name in ("classifier_fid", "classifier_kid", "classifier_pr"):
            train = torch.as_tensor(data.train_images)
            images = train[torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:n]]
        else:
            images = torch.as_tensor(data.train_images)[:n]
        results.update(compute_metrics([name], images.float() / 255, **common))  # (n, C, H, W) in [0, 1]
    return results
