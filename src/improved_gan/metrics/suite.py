"""The metric suite: every metric declared once (``METRICS``), and :func:`compute`, the one entry that the
training loop's evaluation, ``improved-gan evaluate``, ``improved-gan score`` and
:func:`~improved_gan.metrics.compute_metrics` all call.

A metric is a pure formula of :mod:`improved_gan.metrics` applied in one feature space:

- ``classifier``: features ``(N, F)`` and probabilities ``(N, 10)`` of the small Fashion-MNIST / MNIST classifier
  (:mod:`.classifier`; 28x28 grey images only);
- ``inception``: pool features ``(N, 2048)`` and probabilities ``(N, 1008)`` of the 2015 Inception-v3 (paper §4);
- ``features``: Inception pool features for images, the rows themselves for points or feature arrays ``(N, D)``;
- ``mixture``: 2-D points against the modes of the mixture ``ring8`` / ``grid25`` (``improved_gan.metrics.mode_coverage``).

References (what FD, KID and precision/recall compare with), when none is given: ``classifier_fid`` the test
statistics stored in the classifier file; ``classifier_kid`` / ``classifier_pr`` the classifier features of the
classifier's test split; ``fid`` / ``kid`` / ``pr`` on a 2-D mixture N points of the mixture
(:data:`~improved_gan.metrics.references.REFERENCE_SEED`), on images the ``train`` split of ``dataset`` (its
features cached on disk, :mod:`.references`), else an error asking for one.

Small sample counts, one policy everywhere: what is undefined is refused with an :class:`~.inputs.InputError`
naming the input, the count and the need (a score needs ``N >= splits``; precision/recall ``N > k``; a Frechet
distance or KID ``N >= 2``); KID subsets shrink to ``min(kid_subset_size, N, N_ref)`` rows (KID is unbiased, so
its mean stays comparable; its spread grows); a Frechet distance with ``N <= D`` is computed with a
:class:`~improved_gan.metrics.SingularCovarianceWarning` (it is biased in N: compare at equal N).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from improved_gan._dataset_names import TOY_DATASET_NAMES, canonical_dataset_name
from improved_gan.errors import UserError
from improved_gan.metrics import features as F_
from improved_gan.metrics import references as R_
from improved_gan.metrics.inputs import InputError, Samples

_GREY = ("fashion-mnist", "mnist")

#: Parameters of the metrics and their defaults (each metric lists the ones it reads)
PARAMETERS = MappingProxyType(
    {"splits": 10, "kid_subsets": 100, "kid_subset_size": 1000, "k": 3, "num_std": 3.0, "min_count": 1}
)
#: Settings of the networks, not of a formula (which files, which backend, batch size, which classifier)
SETTINGS = ("classifier_path", "classifier", "inception_weights", "inception_backend", "batch_size")


@dataclass
class Result:
    """``values``: metric key -> number (``modes`` is an int); ``intervals``: key -> [low, high] (95%, only with
    ``bootstrap``); ``settings``: the parameters used (``kid_subset_size`` as shrunk for small N)."""

    values: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def _need(n: int, at_least: int, what: str, source: str) -> None:
    if n < at_least:
        raise InputError(f"{source}: {n} samples, {what} needs at least {at_least}; use more samples")


class _Evaluation:
    """One call of :func:`compute`: the inputs, the settings, and features computed once per input."""

    def __init__(self, samples, reference, dataset, device, data_dir, params, settings, shard):
        self.samples, self.reference, self.dataset = samples, reference, dataset
        self.device, self.data_dir, self.params, self.settings, self.shard = (
            device,
            data_dir,
            params,
            settings,
            shard,
        )
        self._memo: dict[Any, Any] = {}
        self.settings_used: dict[str, Any] = {}  # parameters as applied (kid_subset_size shrunk for small N)

    def once(self, key, fn: Callable[[], Any]):
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    # ------------------------------------------------------------------------------------- networks
    def classifier_dataset(self) -> str:
        if self.dataset in _GREY:
            return self.dataset
        from improved_gan.metrics.classifier import canonical_dataset as classifier_dataset

        return classifier_dataset(self.settings.get("classifier") or "fashion-mnist")

    def trained_classifier(self):
        return F_.classifier(
            self.classifier_dataset(), self.settings.get("classifier_path"), device=self.device
        )

    def inception_net(self):
        return F_.inception(
            self.settings.get("inception_weights"),
            device=self.device,
            backend=self.settings.get("inception_backend") or "auto",
        )

    def outputs(self, space: str, s: Samples, *, probs: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(features, probabilities) of images ``s`` in ``space`` ("classifier" or "inception"); for a data-set
        split whose probabilities are not asked for (``probs``), (features from the on-disk cache, None)."""
        if s.images is None:
            raise InputError(f"{s.source}: {space} metrics need images, got rows {tuple(s.features.shape)}")
        if space == "classifier" and tuple(s.images.shape[1:]) != (1, 28, 28):
            raise InputError(
                f"{s.source}: classifier metrics need 28x28 grey images (N, 1, 28, 28), got "
                f"{tuple(s.images.shape)}; use inception_score, fid, kid, pr"
            )
        batch = self.settings.get("batch_size")

        def run():
            if space == "classifier":
                return F_.classifier_outputs(
                    self.trained_classifier(), s.images, batch_size=batch, shard=self.shard
                )
            return F_.inception_outputs(self.inception_net(), s.images, batch_size=batch, shard=self.shard)

        def cached_split():  # a data-set split: its features come from the on-disk cache
            ident = F_.extractor_id(
                space,
                dataset=self.classifier_dataset() if space == "classifier" else None,
                classifier_path=self.settings.get("classifier_path"),
                inception_weights=self.settings.get("inception_weights"),
            )
            return R_.split_features(s, space, ident, lambda: run()[0]), None

        if s.split is None or probs or (space, id(s)) in self._memo:
            return self.once((space, id(s)), run)
        return self.once((space, "split", id(s)), cached_split)

    # --------------------------------------------------------------------------------- references
    def default_reference(self, metric: Metric) -> Samples | None:
        s = self.samples
        if metric.space == "classifier":
            name = f"{self.classifier_dataset()}-test"
            return self.once(("split", name), lambda: R_.load_split(name, data_dir=self.data_dir))
        if s.images is None:
            if self.dataset in TOY_DATASET_NAMES:
                return self.once(("points", len(s)), lambda: R_.load_split(self.dataset, n_points=len(s)))
            return None
        if self.dataset is not None and self.dataset not in TOY_DATASET_NAMES:
            name = f"{self.dataset}-train"
            return self.once(("split", name), lambda: R_.load_split(name, data_dir=self.data_dir))
        return None

    def pair(self, metric: Metric) -> tuple[np.ndarray, np.ndarray, Samples]:
        """(sample features, reference features, the reference) of a reference-comparing metric."""
        ref = self.reference if self.reference is not None else self.default_reference(metric)
        if ref is None:
            raise InputError(
                f"metric {metric.name} compares with a reference: give one (INPUT2 or --reference NAME on the "
                f"command line, reference= in Python)"
            )
        s = self.samples
        if metric.space == "classifier":
            return self.outputs("classifier", s)[0], self.outputs("classifier", ref)[0], ref
        if (s.images is None) != (ref.images is None):
            raise InputError(f"{s.source} and {ref.source}: compare images with images, rows with rows")
        if s.images is None:
            if s.features.shape[1] != ref.features.shape[1]:
                raise InputError(
                    f"{s.source} has {s.features.shape[1]} columns, {ref.source} {ref.features.shape[1]}"
                )
            return s.features, ref.features, ref
        return self.outputs("inception", s)[0], self.outputs("inception", ref)[0], ref


# ------------------------------------------------------------------------------------------- formulas
# Each returns (values, bootstrap), bootstrap = (function of the arrays -> tuple of values, the keys it gives,
# the arrays, their sources, the rows each array needs, what needs them).
def _score(ev: _Evaluation, m: Metric):
    from improved_gan.metrics import inception_score

    splits = ev.params["splits"]
    probs = ev.outputs(m.space, ev.samples, probs=True)[1]
    what = f"{m.name} with splits={splits}"
    _need(len(probs), splits, what, ev.samples.source)
    mean, std = inception_score(probs, splits=splits)
    return {m.keys[0]: mean, m.keys[1]: std}, (
        lambda p: (inception_score(p, splits=splits)[0],),
        m.keys[:1],
        (probs,),
        (ev.samples.source,),
        splits,
        what,
    )


def _fid(ev: _Evaluation, m: Metric):
    from improved_gan.metrics import frechet_distance, gaussian_statistics

    s = ev.samples
    if m.space == "classifier" and ev.reference is None:  # the classifier file's test statistics
        f1 = ev.outputs("classifier", s)[0]
        trained = ev.trained_classifier()
        mu2, sigma2 = trained.test_mu.numpy(), trained.test_sigma.numpy()
        _need(len(f1), 2, m.name, s.source)

        def fd1(a):
            return (frechet_distance(*gaussian_statistics(a), mu2, sigma2),)

        return {m.keys[0]: fd1(f1)[0]}, (fd1, m.keys, (f1,), (s.source,), 2, m.name)
    f1, f2, ref = ev.pair(m)
    for f, src in ((f1, s.source), (f2, ref.source)):
        _need(len(f), 2, m.name, src)

    def fd2(a, b):
        return (frechet_distance(*gaussian_statistics(a), *gaussian_statistics(b)),)

    return {m.keys[0]: fd2(f1, f2)[0]}, (fd2, m.keys, (f1, f2), (s.source, ref.source), 2, m.name)


def _kid(ev: _Evaluation, m: Metric):
    from improved_gan.metrics import kernel_inception_distance

    f1, f2, ref = ev.pair(m)
    subsets, size = ev.params["kid_subsets"], ev.params["kid_subset_size"]
    for f, src in ((f1, ev.samples.source), (f2, ref.source)):
        _need(len(f), 2, m.name, src)

    def kid(a, b):
        return kernel_inception_distance(a, b, subsets=subsets, subset_size=min(size, len(a), len(b)))

    ev.settings_used["kid_subset_size"] = min(size, len(f1), len(f2))
    mean, std = kid(f1, f2)
    return {m.keys[0]: mean, m.keys[1]: std}, (
        lambda a, b: (kid(a, b)[0],),
        m.keys[:1],
        (f1, f2),
        (ev.samples.source, ref.source),
        2,
        m.name,
    )


def _pr(ev: _Evaluation, m: Metric):
    from improved_gan.metrics import precision_recall

    f1, f2, ref = ev.pair(m)
    k = ev.params["k"]
    what = f"{m.name} with k={k}"
    for f, src in ((f1, ev.samples.source), (f2, ref.source)):
        _need(len(f), k + 1, what, src)

    def pr(a, b):
        return precision_recall(b, a, k=k)

    p, r = pr(f1, f2)
    return {m.keys[0]: p, m.keys[1]: r}, (pr, m.keys, (f1, f2), (ev.samples.source, ref.source), k + 1, what)


def _mixture(ev: _Evaluation, m: Metric):
    from improved_gan.data import load_toy
    from improved_gan.metrics import mode_statistics

    if ev.dataset not in TOY_DATASET_NAMES or ev.samples.images is not None:
        raise UserError(f"metric {m.name} needs 2-D points (N, 2) of a mixture: dataset ring8 or grid25")
    mixture = load_toy(ev.dataset)
    points = ev.samples.features
    num_std, min_count = ev.params["num_std"], ev.params["min_count"]

    def stats(p):
        out = mode_statistics(
            torch.from_numpy(np.ascontiguousarray(p)),
            mixture.centres,
            mixture.std,
            num_std=num_std,
            min_count=min_count,
        )
        return (out[m.name],)

    value = ev.once(
        ("modes", num_std, min_count),
        lambda: mode_statistics(
            torch.from_numpy(points), mixture.centres, mixture.std, num_std=num_std, min_count=min_count
        ),
    )[m.name]
    return {m.name: value}, (stats, m.keys, (points,), (ev.samples.source,), 1, m.name)


@dataclass(frozen=True)
class Metric:
    """One metric: its name, feature space, whether it compares with a reference, the parameters it reads
    (defaults in ``PARAMETERS``), the keys it returns, what the number means, the function that computes it
    from the features of its space (``formula(evaluation, metric) -> (values, bootstrap)``), other names."""

    name: str
    space: str
    needs_reference: bool
    params: tuple[str, ...]
    keys: tuple[str, ...]
    meaning: str
    formula: Callable = field(repr=False, compare=False)
    aliases: tuple[str, ...] = ()

    @property
    def report_keys(self) -> tuple[str, ...]:
        """The keys tables show as columns (the ``*_std`` companions are not)."""
        return tuple(k for k in self.keys if not k.endswith("_std"))


METRICS = {
    m.name: m
    for m in [
        Metric(
            "inception_score",
            "inception",
            False,
            ("splits",),
            ("inception_score", "inception_score_std"),
            "Inception Score, 2015 Inception-v3, in-order splits (higher is better; paper §4)",
            _score,
            ("is",),
        ),
        Metric(
            "fid",
            "features",
            True,
            (),
            ("fid",),
            "Frechet distance of Inception pool features (or of the rows) to the reference (lower is better)",
            _fid,
        ),
        Metric(
            "kid",
            "features",
            True,
            ("kid_subsets", "kid_subset_size"),
            ("kid", "kid_std"),
            "KID, unbiased cubic-kernel MMD^2 of Inception pool features or rows (lower is better; ~0 = same)",
            _kid,
        ),
        Metric(
            "pr",
            "features",
            True,
            ("k",),
            ("precision", "recall"),
            "precision: share of samples on the reference manifold; recall: share of the reference covered",
            _pr,
            ("precision_recall",),
        ),
        Metric(
            "classifier_score",
            "classifier",
            False,
            ("splits",),
            ("classifier_score", "classifier_score_std"),
            "Inception Score formula on the Fashion-MNIST/MNIST classifier (higher is better)",
            _score,
        ),
        Metric(
            "classifier_fid",
            "classifier",
            True,
            (),
            ("classifier_fid",),
            "Frechet distance of the classifier's features to the reference's (lower is better)",
            _fid,
            ("classifier_fd",),
        ),
        Metric(
            "classifier_kid",
            "classifier",
            True,
            ("kid_subsets", "kid_subset_size"),
            ("classifier_kid", "classifier_kid_std"),
            "KID of the classifier's features (lower is better; ~0 = same)",
            _kid,
        ),
        Metric(
            "classifier_pr",
            "classifier",
            True,
            ("k",),
            ("classifier_precision", "classifier_recall"),
            "precision and recall in the classifier's feature space (k nearest-neighbour manifolds)",
            _pr,
        ),
        Metric(
            "high_quality",
            "mixture",
            False,
            ("num_std",),
            ("high_quality",),
            "fraction of points within num_std std of a mode centre",
            _mixture,
        ),
        Metric(
            "modes",
            "mixture",
            False,
            ("num_std", "min_count"),
            ("modes",),
            "modes with at least min_count high-quality points",
            _mixture,
        ),
        Metric(
            "mode_kl",
            "mixture",
            False,
            ("num_std",),
            ("mode_kl",),
            "KL(histogram of high-quality points over modes || uniform)",
            _mixture,
        ),
    ]
}
#: Other accepted name to canonical name (``classifier_fd`` and ``is`` were the names of ``score``)
ALIASES = MappingProxyType({a: m.name for m in METRICS.values() for a in m.aliases})

#: Data set to (default metrics, default number of samples), the latter the test-set size, the paper's 50,000 or 2,500
DEFAULTS = MappingProxyType(
    {
        "fashion-mnist": (("classifier_score", "classifier_fid", "classifier_kid", "classifier_pr"), 10_000),
        "mnist": (("classifier_score", "classifier_fid", "classifier_kid", "classifier_pr"), 10_000),
        "cifar10": (("inception_score",), 50_000),
        "svhn": (("inception_score",), 50_000),
        "ring8": (("high_quality", "modes", "mode_kl", "pr", "kid"), 2_500),
        "grid25": (("high_quality", "modes", "mode_kl", "pr", "kid"), 2_500),
    }
)


def canonical_dataset(name: str) -> str:
    """The canonical name of a data set that has metrics (:mod:`improved_gan._dataset_names` aliases)."""
    key = canonical_dataset_name(name)
    if key not in DEFAULTS:
        raise UserError(f"no metrics for data set {name!r}; expected one of {', '.join(DEFAULTS)}")
    return key


def canonical_name(name: str) -> str:
    """A metric's canonical name (aliases accepted); UserError naming every metric if unknown."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in METRICS:
        raise UserError(
            f"unknown metric {name!r}; expected one of {', '.join(METRICS)} (aliases: {', '.join(ALIASES)})"
        )
    return key


def parse_names(text_or_names) -> tuple[str, ...] | None:
    """``"a,b"`` or a sequence of names -> canonical names in order, without repeats; None stays None."""
    if text_or_names is None:
        return None
    raw = text_or_names.split(",") if isinstance(text_or_names, str) else list(text_or_names)
    names: list[str] = []
    for item in raw:
        if str(item).strip():
            name = canonical_name(item)
            if name not in names:
                names.append(name)
    if not names:
        raise UserError("no metric named")
    return tuple(names)


def default_metrics(dataset: str) -> tuple[str, ...]:
    """The metrics evaluated for ``dataset`` when none are named."""
    return DEFAULTS[canonical_dataset(dataset)][0]


def default_num_samples(dataset: str) -> int:
    """Samples per evaluation of ``dataset`` (compare FDs at equal N: it is biased in N)."""
    return DEFAULTS[canonical_dataset(dataset)][1]


def default_names_for(samples: Samples, has_reference: bool) -> tuple[str, ...]:
    """The metrics of an input of no known data set: rows -> fid, kid, pr; 28x28 grey -> the classifier's;
    other images -> the Inception Score (and fid, kid, pr with a reference)."""
    if samples.images is None:
        return ("fid", "kid", "pr")
    if tuple(samples.images.shape[1:]) == (1, 28, 28):
        return ("classifier_score", "classifier_fid", "classifier_kid", "classifier_pr")
    return ("inception_score", "fid", "kid", "pr") if has_reference else ("inception_score",)


def _applies(name: str, dataset: str) -> bool:
    """Whether metric ``name`` applies to samples of ``dataset`` (its feature space's data)."""
    return {
        "classifier": dataset in _GREY,
        "inception": dataset not in TOY_DATASET_NAMES,
        "features": True,
        "mixture": dataset in TOY_DATASET_NAMES,
    }[METRICS[name].space]


def _check_applies(name: str, dataset: str | None) -> None:
    if dataset is not None and not _applies(name, dataset):
        usable = ", ".join(n for n in METRICS if _applies(n, dataset))
        raise UserError(f"metric {name!r} does not apply to data set {dataset}; use {usable}")


def compute(
    names,
    samples: Samples,
    *,
    reference: Samples | str | None = None,
    dataset: str | None = None,
    data_dir=None,
    device="cpu",
    bootstrap: int = 0,
    seed: int = 0,
    shard: bool = False,
    **options,
) -> Result:
    """The metrics ``names`` (canonical names or aliases; None: :func:`default_metrics` of ``dataset``, else
    :func:`default_names_for` the input) of ``samples`` against ``reference`` (a
    :class:`~improved_gan.metrics.inputs.Samples`, a reference
    name such as ``"cifar10-train"``, or None: the module docstring's default).

    ``options``: the parameters of ``PARAMETERS`` and the settings of ``SETTINGS``; TypeError for
    others. ``bootstrap`` > 0: 95% intervals from that many random halves (:func:`~.bootstrap_interval`,
    seeded ``seed``), centred on the values. ``shard``: split feature extraction across the ranks of an
    initialised torch.distributed group (:mod:`.features`; every rank must call with the same samples).
    Values are in the order of ``names`` and of each metric's ``keys``.
    """
    unknown = set(options) - set(PARAMETERS) - set(SETTINGS)
    if unknown:
        raise TypeError(
            f"unknown metric options {sorted(unknown)}; expected some of {sorted([*PARAMETERS, *SETTINGS])}"
        )
    dataset = canonical_dataset(dataset) if dataset is not None else None
    if isinstance(reference, str):
        reference = R_.load_split(reference, data_dir=data_dir, n_points=len(samples))
    names = parse_names(names)
    if names is None:
        names = (
            default_metrics(dataset)
            if dataset is not None
            else default_names_for(samples, reference is not None)
        )
    for name in names:
        _check_applies(name, dataset)
    params = {k: options.get(k, v) for k, v in PARAMETERS.items()}
    settings = {k: options.get(k) for k in SETTINGS}
    ev = _Evaluation(samples, reference, dataset, str(device), data_dir, params, settings, shard)
    result = Result()
    for name in names:
        m = METRICS[name]
        values, (fn, keys, arrays, sources, at_least, what) = m.formula(ev, m)
        result.values.update(values)
        if bootstrap:
            _bootstrap_interval(result, fn, keys, arrays, sources, at_least, what, bootstrap, seed)
    used = {p for n in names for p in METRICS[n].params}
    result.settings = {k: params[k] for k in PARAMETERS if k in used}
    result.settings.update(ev.settings_used)
    return result


def _bootstrap_interval(result, fn, keys, arrays, sources, at_least, what, n, seed) -> None:
    from improved_gan.metrics import bootstrap_interval

    for a, src in zip(arrays, sources, strict=True):
        if len(a) // 2 < max(at_least, 4):
            raise InputError(
                f"{src}: {len(a)} samples, so the random halves of the bootstrap have {len(a) // 2}; {what} needs "
                f"at least {max(at_least, 4)}; use more samples or no bootstrap"
            )
    estimate = tuple(result.values[k] for k in keys)
    with warnings.catch_warnings():  # the halves' covariances: the full-data value already warned once
        warnings.simplefilter("ignore")
        cis = bootstrap_interval(fn, *arrays, n=n, seed=seed, estimate=estimate)
    for key, ci in zip(keys, cis, strict=True):
        result.intervals[key] = [ci[0], ci[1]]


def check_available(names, dataset: str, *, device="cpu", data_dir=None, **settings) -> None:
    """Load (and cache) the networks and default references that the metrics ``names`` of ``dataset`` need, so
    a missing weights or data file fails before training rather than at the first evaluation (UserError)."""
    dataset = canonical_dataset(dataset)
    names = parse_names(names) or default_metrics(dataset)
    for name in names:
        _check_applies(name, dataset)
    spaces = {METRICS[n].space for n in names}
    chosen = {k: settings.get(k) for k in SETTINGS}
    ev = _Evaluation(None, None, dataset, str(device), data_dir, dict(PARAMETERS), chosen, False)
    if "classifier" in spaces:
        ev.trained_classifier()
        if {"classifier_kid", "classifier_pr"} & set(names):
            R_.load_split(f"{ev.classifier_dataset()}-test", data_dir=data_dir)
    if "inception" in spaces or ("features" in spaces and dataset not in TOY_DATASET_NAMES):
        ev.inception_net()


def report_keys(dataset: str, names=None) -> tuple[str, ...]:
    """The result keys tables report for the metrics ``names`` (None: the defaults) of ``dataset``, in order."""
    names = parse_names(names) or default_metrics(dataset)
    return tuple(k for n in names for k in METRICS[n].report_keys)


def meaning_of(key: str) -> str:
    """The one-line meaning of a result key (``classifier_precision`` -> classifier_pr's)."""
    for m in METRICS.values():
        if key in m.keys:
            return m.meaning
    return ""


def available_metrics() -> tuple[str, ...]:
    """The canonical names of all metrics."""
    return tuple(METRICS)
