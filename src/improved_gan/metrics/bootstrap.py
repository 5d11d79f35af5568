"""Confidence intervals for any of the sample-quality metrics (README, "Scoring your own samples").

The metric is recomputed on ``n`` replicates of its inputs, every input set (samples, features or
probabilities) drawn independently of the others with one seeded ``numpy.random.default_rng(seed)``. Two ways to
draw them:

``method="half"`` (the default): each replicate is a random half of every input, drawn without replacement
(``N // 2`` of ``N`` rows). For a statistic of ``N`` samples the spread of its values on halves estimates the
spread of its value on ``N`` samples (the delete-``d`` jackknife with ``d = N / 2``, Shao and Wu 1989: its
variance factor ``(N - d) / d`` is 1). The interval is the full-data value plus the ``(1 - confidence) / 2``
and ``(1 + confidence) / 2`` quantiles of the replicates' deviations from their mean, so that the shift a metric
has at half the samples (the Frechet distance grows, k-NN precision and recall rise) does not move the interval.
Valid for the Frechet distance, KID and precision/recall, which a resample with replacement biases: repeated
rows are each other's nearest neighbours (on Gaussian data with ``N = 2000`` it lowers the precision from 0.85 to
0.75 on average) and shrink the covariance's rank.

``method="resample"``: the classic percentile bootstrap. Each replicate resamples every input with replacement
to its own size; the interval is the quantiles of the replicates themselves. Right for means over samples; not
for the metrics above.

Either way the interval says how much a number would move with another draw of the same number of samples; it
does not remove a metric's bias (the Frechet distance shrinks as the samples grow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

METHODS = ("half", "resample")


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    return np.asarray(x)


def _values(value: Any) -> np.ndarray:
    return np.atleast_1d(np.asarray(value, dtype=np.float64))


def bootstrap_interval(
    fn: Callable[..., Any],
    *arrays: Any,
    n: int = 100,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "half",
    estimate: float | tuple[float, ...] | None = None,
) -> list[tuple[float, float]]:
    """Confidence interval of ``fn(*arrays)`` from ``n`` replicates (module docstring).

    Args:
        fn: a function of the arrays returning a float or a tuple of floats (e.g. ``precision_recall``).
        arrays: arrays or tensors of shape ``(N_i, ...)``, each drawn from along its first axis (rows).
        n: number of replicates (default 100).
        confidence: the interval's coverage (default 0.95).
        seed: seed of the draws.
        method: ``"half"`` (random halves without replacement, centred on the full-data value; default) or
            ``"resample"`` (percentile bootstrap with replacement).
        estimate: ``fn(*arrays)`` when the caller has computed it already; ``"half"`` centres the interval on
            it (computed here when not given; ``"resample"`` does not use it).

    Returns:
        One ``(low, high)`` pair per value that ``fn`` returns.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"bootstrap_interval: n must be an integer >= 2, got {n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap_interval: confidence must lie in (0, 1), got {confidence!r}")
    if method not in METHODS:
        raise ValueError(f"bootstrap_interval: method must be one of {', '.join(METHODS)}, got {method!r}")
    data = [_as_array(a) for a in arrays]
    if method == "half" and any(a.shape[0] < 4 for a in data):
        raise ValueError("bootstrap_interval: method='half' needs at least 4 rows in every array")
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n):
        if method == "half":
            drawn = [a[np.sort(rng.permutation(a.shape[0])[: a.shape[0] // 2])] for a in data]
        else:
            drawn = [a[rng.integers(0, a.shape[0], size=a.shape[0])] for a in data]
        replicates.append(_values(fn(*drawn)))
    values = np.stack(replicates)  # (n, number of values)
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    if method == "resample":
        lo, hi = np.quantile(values, q, axis=0)
    else:
        full = _values(fn(*data) if estimate is None else estimate)
        lo, hi = full + np.quantile(values - values.mean(axis=0), q, axis=0)
    return [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]
