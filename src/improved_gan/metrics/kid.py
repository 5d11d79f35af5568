"""Kernel Inception Distance (Binkowski et al., 2018): an unbiased estimate of the squared MMD between features.

The kernel is the cubic polynomial ``k(x, y) = (x . y / d + 1) ** 3`` on ``d``-dimensional features. For two
sets of ``m`` features each, the unbiased estimate of MMD^2 is::

    sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2

Unlike the Frechet distance (whose plug-in estimate is biased upwards by an amount that depends on N), its
expectation does not depend on the number of samples, so KIDs measured with few samples can be compared. It is
computed on ``subsets`` random subsets of ``subset_size`` rows of each set and reported as the mean and the
population standard deviation (ddof 0) over subsets. The defaults (100 subsets of 1000 rows, each subset drawn
with ``numpy.random.RandomState(seed).choice(N, subset_size, replace=False)``, first for the first set and then
for the second, from one generator seeded 2020) follow the convention of torch-fidelity's ``kid``, so the
numbers are comparable with it. The sample-quality metrics of the paper (§4) are the Inception Score; KID is
offered next to it for the README's "Scoring your own samples".
"""

from __future__ import annotations

from typing import Any

import numpy as np

SUBSETS = 100
SUBSET_SIZE = 1000
SEED = 2020


def _as_float64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def polynomial_kernel(x: Any, y: Any, *, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(x @ y.T / d + coef0) ** degree`` for ``x`` (N, d), ``y`` (M, d) -> (N, M), float64."""
    x, y = _as_float64(x), _as_float64(y)
    base = x @ y.T / x.shape[1] + coef0  # (N, M)
    if (
        isinstance(degree, (int, np.integer)) and degree >= 1
    ):  # repeated products: ``**`` calls pow(), 300x slower
        out = base
        for _ in range(int(degree) - 1):
            out = out * base if out is base else np.multiply(out, base, out=out)
        return out
    return base**degree


def mmd2_unbiased(x: Any, y: Any, *, degree: int = 3, coef0: float = 1.0) -> float:
    """The unbiased MMD^2 estimate between ``x`` (m, d) and ``y`` (m, d) with :func:`polynomial_kernel`."""
    x, y = _as_float64(x), _as_float64(y)
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(
            f"mmd2_unbiased: needs two sets of the same size m >= 2, got {x.shape[0]}, {y.shape[0]}"
        )
    kxx = polynomial_kernel(x, x, degree=degree, coef0=coef0)  # (m, m)
    kyy = polynomial_kernel(y, y, degree=degree, coef0=coef0)  # (m, m)
    kxy = polynomial_kernel(x, y, degree=degree, coef0=coef0)  # (m, m)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(
    features1: Any,
    features2: Any,
    *,
    subsets: int = SUBSETS,
    subset_size: int = SUBSET_SIZE,
    seed: int = SEED,
    degree: int = 3,
    coef0: float = 1.0,
) -> tuple[float, float]:
    """KID between features ``features1`` (N1, d) and ``features2`` (N2, d): ``(mean, std)`` over subsets.

    Args:
        features1, features2: tensors or arrays of one feature dimension ``d`` (Inception-v3 pool features:
            d = 2048; the classifier's: 128; 2-D points: 2).
        subsets: number of random subsets (default 100).
        subset_size: rows per subset, drawn without replacement from each set; needs ``subset_size <= N1, N2``
            (default 1000).
        seed: seed of the ``numpy.random.RandomState`` that draws the subsets (default 2020).

    Returns:
        Mean and population standard deviation (ddof 0) of the per-subset unbiased MMD^2, as Python floats.
        KID can be slightly negative when the two distributions are equal.
    """
    x, y = _as_float64(features1), _as_float64(features2)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or x.shape[1] == 0:
        raise ValueError(
            f"kernel_inception_distance: features must be (N, d) of one d, got {x.shape}, {y.shape}"
        )
    if isinstance(subsets, bool) or not isinstance(subsets, (int, np.integer)) or subsets < 1:
        raise ValueError(f"kernel_inception_distance: subsets must be a positive integer, got {subsets!r}")
    if not 2 <= subset_size <= min(x.shape[0], y.shape[0]):
        raise ValueError(
            f"kernel_inception_distance: subset_size {subset_size} needs 2 <= subset_size <= the number of "
            f"samples of each set ({x.shape[0]}, {y.shape[0]})"
        )
    rng = np.random.RandomState(seed)
    values = np.empty(subsets, dtype=np.float64)
    for s in range(subsets):
        a = x[rng.choice(x.shape[0], subset_size, replace=False)]  # (m, d)
        b = y[rng.choice(y.shape[0], subset_size, replace=False)]  # (m, d)
        values[s] = mmd2_unbiased(a, b, degree=degree, coef0=coef0)
    return float(values.mean()), float(values.std())
