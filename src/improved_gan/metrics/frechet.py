"""The Frechet distance between two Gaussians (the formula behind FID), and feature statistics.

``d^2 = |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, computed in float64 with
``scipy.linalg.sqrtm``. As in the common FID code (pytorch-fid, TTUR): if the square root of the product is
not finite (a near-singular product), ``eps * I`` is added to both covariances and it is recomputed; a
complex result whose diagonal has an imaginary part above 1e-3 raises ValueError, smaller imaginary parts
(rounding) are dropped. :func:`gaussian_statistics` uses the unbiased covariance (ddof 1), as that code does.

A covariance of N samples in D dimensions has rank at most N - 1, so with N <= D it is singular and the
distance is unreliable (and biased, as it is for any N): :func:`gaussian_statistics` then warns with
:class:`SingularCovarianceWarning`, and :func:`frechet_distance` replaces scipy's "matrix is singular" warning
by one :class:`SingularCovarianceWarning` that says so. ``improved-gan score`` refuses such inputs (README,
"Scoring your own samples").
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import linalg


class SingularCovarianceWarning(UserWarning):
    """A covariance (or the product of two) is singular: e.g. fewer samples than feature dimensions."""


def _sqrtm(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """``scipy.linalg.sqrtm(a)`` and whether scipy found ``a`` singular (its warning is swallowed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = linalg.sqrtm(a)
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    return root, singular


def _as_float64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def gaussian_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (ddof 1) of ``(N, D)`` features, as float64 arrays."""
    x = _as_float64(features)  # (N, D)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] == 0:
        raise ValueError(f"gaussian_statistics: features must have shape (N, D) with N >= 2, got {x.shape}")
    if x.shape[0] <= x.shape[1]:
        warnings.warn(
            f"gaussian_statistics: {x.shape[0]} samples of {x.shape[1]} features: the covariance has rank at "
            f"most {x.shape[0] - 1} < {x.shape[1]} (singular), so a Frechet distance from it is unreliable; "
            f"use more samples than feature dimensions (several times more)",
            SingularCovarianceWarning,
            stacklevel=2,
        )
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
    covmean, singular = _sqrtm(sigma1 @ sigma2)  # (D, D)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(d) * eps  # (D, D)
        covmean, _ = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if singular:
        warnings.warn(
            f"frechet_distance: sigma1 @ sigma2 ({d}x{d}) is singular, so its square root and the distance may "
            f"be inaccurate; a covariance of N samples in D dimensions is singular when N <= D (or when some "
            f"features are constant): use more samples than the {d} feature dimensions",
            SingularCovarianceWarning,
            stacklevel=2,
        )
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > 1e-3:
            raise ValueError(
                f"frechet_distance: sqrtm(sigma1 @ sigma2) is complex (imaginary part {imag:.3g})"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
