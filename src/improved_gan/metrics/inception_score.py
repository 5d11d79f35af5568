"""The Inception Score formula (Salimans et al., 2016, section 4), on given class probabilities.

``IS = exp( E_x KL( p(y|x) || p(y) ) )`` with ``p(y)`` the mean of ``p(y|x)`` over the split. This follows the
convention of the reference code (openai/improved-gan ``inception_score/model.py``), the de-facto standard:
the N samples are cut IN ORDER into ``splits`` parts, part k holding rows ``k*N//splits`` up to
``(k+1)*N//splits``; each part gives ``exp(mean_i KL(p_i || mean p))``; the result is the mean and the
population standard deviation (ddof 0) of the per-part scores. All arithmetic is float64, and
``0 * log 0 = 0``.

The paper's numbers need ``probs`` from the 2015 Inception-v3 graph (torch-fidelity's
``inception-v3-compat``); on Fashion-MNIST/MNIST the same formula with a classifier trained on that data
is a "classifier score", never to be reported as an Inception Score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import xlogy


def _as_float64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def inception_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """Inception Score of ``(N, K)`` class probabilities (tensor or array, rows summing to 1).

    Args:
        probs: ``(N, K)`` predicted class probabilities p(y|x_i), non-negative, each row summing to 1
            (within 1e-3).
        splits: number of in-order parts; needs ``N >= splits``.

    Returns:
        ``(mean, std)`` of the per-part scores, as Python floats.
    """
    p = _as_float64(probs)  # (N, K)
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError(f"inception_score: probs must have shape (N, K), got {p.shape}")
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or splits < 1:
        raise ValueError(f"inception_score: splits must be a positive integer, got {splits!r}")
    n = p.shape[0]
    if n < splits:
        raise ValueError(f"inception_score: needs at least splits={splits} rows, got {n}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("inception_score: probs must be finite and non-negative")
    row_sums = p.sum(axis=1)  # (N,)
    if np.any(np.abs(row_sums - 1.0) > 1e-3):
        worst = float(row_sums[np.argmax(np.abs(row_sums - 1.0))])
        raise ValueError(f"inception_score: rows of probs must sum to 1 (within 1e-3); one sums to {worst}")
    scores = np.empty(splits, dtype=np.float64)
    for k in range(splits):
        part = p[k * n // splits : (k + 1) * n // splits]  # (n_k, K)
        p_y = part.mean(axis=0, keepdims=True)  # (1, K)
        kl = (xlogy(part, part) - xlogy(part, p_y)).sum(axis=1)  # (n_k,) KL(p_i || p_y), 0 log 0 = 0
        scores[k] = np.exp(kl.mean())
    return float(scores.mean()), float(scores.std())
