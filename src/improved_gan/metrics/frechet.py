"""The Frechet distance between two Gaussians (the formula behind FID), and feature statistics.

``d^2 = |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, computed in float64 with
``scipy.linalg.sqrtm``. As in the common FID code (pytorch-fid, TTUR): if the square root of the product is
not finite (a near-singular product), ``eps * I`` is added to both covariances and it is recomputed; a
complex result whose diagonal has an imaginary part above 1e-3 raises ValueError, smaller imaginary parts
(rounding) are dropped. :func:`gaussian_statistics` uses the unbiased covariance (ddof 1), as that code does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg


def _as_float64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def gaussian_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (ddof 1) of ``(N, D)`` features, as float64 arrays."""
    x = _as_float64(features)  # (N, D)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] == 0:
        raise ValueError(f"gaussian_statistics: features must have shape (N, D) with N >= 2, got {x.shape}")
    mu = x.mean(axis=0)  # (D,)
    sigma = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))  # (D, D)
    return mu, sigma


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, *, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2): mu ``(D,)``, sigma ``(D, D)``.

    Args:
        mu1, sigma1, mu2, sigma2: tensors or arrays.
        eps: the diagonal offset used only when the square root of ``sigma1 @ sigma2`` is not finite.

    Returns:
        The squared distance as a Python float.
    """
    mu1, mu2 = _as_float64(mu1), _as_float64(mu2)
    sigma1, sigma2 = _as_float64(sigma1), _as_float64(sigma2)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: means must be vectors of one shape, got {mu1.shape} {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: covariances must have shape ({d}, {d}), got {sigma1.shape}, {sigma2.shape}"
        )
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"frechet_distance: {name} has non-finite entries")
    diff = mu1 - mu2  # (D,)
    covmean = linalg.sqrtm(sigma1 @ sigma2)  # (D, D)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(d) * eps  # (D, D)
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > 1e-3:
            raise ValueError(
                f"frechet_distance: sqrtm(sigma1 @ sigma2) is complex (imaginary part {imag:.3g})"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
