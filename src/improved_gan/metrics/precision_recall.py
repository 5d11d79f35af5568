"""Improved precision and recall (Kynkaanniemi et al., 2019): sample quality versus coverage, on features.

Each set of features defines a manifold: the union of balls around its points, the ball of point ``p`` having
radius ``r_k(p)``, the distance from ``p`` to its k-th nearest neighbour in its own set, ``p`` itself excluded
(k = 3 by default). Then

- precision = the fraction of generated samples inside the REAL manifold (how many samples look real);
- recall = the fraction of real samples inside the GENERATED manifold (how much of the real data is covered).

A mode-collapsed generator (paper §3.2, the failure minibatch discrimination targets) keeps a high precision
and loses recall. Distances are Euclidean, computed in float64 in chunks of rows so that memory stays at about
``chunk * N`` numbers; a point exactly on a ball's boundary counts as inside.
"""

from __future__ import annotations

from typing import Any

import numpy as np

K = 3


def _as_float64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _sq_distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), clipped at 0 against rounding."""
    d = (a * a).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def knn_radii(features: Any, *, k: int = K, chunk: int = 1000) -> np.ndarray:
    """Distance from each row of ``features`` (N, d) to its k-th nearest other row -> (N,), float64.

    Needs ``N > k``. Duplicated rows count as neighbours at distance 0.
    """
    x = _as_float64(features)
    n = x.shape[0]
    if x.ndim != 2 or n <= k or k < 1:
        raise ValueError(f"knn_radii: needs features (N, d) with N > k = {k}, got {x.shape}")
    sq = (x * x).sum(axis=1)  # (N,)
    radii = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk):
        d = _sq_distances(x[start : start + chunk], x, sq)  # (c, N)
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = np.inf  # exclude self
        radii[start : start + chunk] = np.sqrt(np.partition(d, k - 1, axis=1)[:, k - 1])
    return radii


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int) -> float:
    """Fraction of ``points`` within ``radii[j]`` of some ``centres[j]``."""
    c_sq = (centres * centres).sum(axis=1)
    r_sq = radii * radii
    inside = np.empty(points.shape[0], dtype=bool)
    for start in range(0, points.shape[0], chunk):
        d = _sq_distances(points[start : start + chunk], centres, c_sq)  # (c, M)
        inside[start : start + chunk] = (d <= r_sq[None, :] * (1 + 1e-12)).any(axis=1)
    return float(inside.mean())


def precision_recall(real: Any, fake: Any, *, k: int = K, chunk: int = 1000) -> tuple[float, float]:
    """Improved ``(precision, recall)`` of ``fake`` (M, d) against ``real`` (N, d) with k-NN radii.

    Args:
        real, fake: tensors or arrays of one feature dimension; each needs more than ``k`` rows.
        k: the neighbour whose distance is a ball's radius (default 3, the paper's recommendation).
        chunk: rows per block of the distance computation.

    Returns:
        ``(precision, recall)``, Python floats in [0, 1].
    """
    r, f = _as_float64(real), _as_float64(fake)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"precision_recall: features must be (N, d) of one d, got {r.shape}, {f.shape}")
    real_radii, fake_radii = knn_radii(r, k=k, chunk=chunk), knn_radii(f, k=k, chunk=chunk)
    return _coverage(f, r, real_radii, chunk), _coverage(r, f, fake_radii, chunk)
