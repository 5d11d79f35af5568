"""Bootstrap confidence intervals for any of the sample-quality metrics (README, "Scoring your own samples").

The metric is recomputed on ``n`` bootstrap replicates: every input set (samples, features or probabilities)
is resampled with replacement to its own size, independently of the others, with one seeded
``numpy.random.default_rng(seed)``. The interval is the percentile interval of the replicates (the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles, numpy's linear interpolation). It states how
much a number would move with another draw of the same number of samples; it does not remove a metric's bias
(the Frechet distance shrinks with more samples; resampling with replacement repeats rows, which biases it
further upwards).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    return np.asarray(x)


def bootstrap_interval(
    fn: Callable[..., Any],
    *arrays: Any,
    n: int = 100,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Percentile bootstrap interval of ``fn(*arrays)``.

    Args:
        fn: a function of the arrays returning a float or a tuple of floats (e.g. ``precision_recall``).
        arrays: arrays or tensors, each resampled along its first axis (rows).
        n: number of replicates (default 100).
        confidence: the interval's coverage (default 0.95).
        seed: seed of the resampling.

    Returns:
        One ``(low, high)`` pair per value that ``fn`` returns.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"bootstrap_interval: n must be an integer >= 2, got {n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap_interval: confidence must lie in (0, 1), got {confidence!r}")
    data = [_as_array(a) for a in arrays]
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n):
        resampled = [a[rng.integers(0, a.shape[0], size=a.shape[0])] for a in data]
        value = fn(*resampled)
        replicates.append(np.atleast_1d(np.asarray(value, dtype=np.float64)))
    values = np.stack(replicates)  # (n, number of values)
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]
