"""Mode coverage of samples from a 2-D Gaussian mixture (``ring8``, ``grid25``): how a generator collapses.

The paper (section 3.2) motivates minibatch discrimination by the generator collapsing onto few points but
has no toy experiment; we measure collapse as the later mode-collapse literature does (Unrolled GANs, Metz et
al. 2017; VEEGAN; PacGAN). With centres ``mu_k`` (K, 2) and a common per-coordinate std ``s``:

| name             | definition                                                                           |
|------------------|--------------------------------------------------------------------------------------|
| ``k(x)``         | ``argmin_k |x - mu_k|_2``, the nearest centre                                        |
| high quality     | ``|x - mu_k(x)|_2 <= num_std * s`` (``num_std`` = 3)                                 |
| ``high_quality`` | the fraction of samples that are high quality                                        |
| ``n_k``          | the number of high-quality samples with ``k(x) = k``                                 |
| ``modes``        | the number of modes with ``n_k >= min_count`` (default 1; PacGAN uses 20 of 2,500)   |
| ``mode_kl``      | ``KL(p || U) = sum_k p_k log(K p_k)``, ``p_k = n_k / sum_j n_j``, ``U`` uniform on K |

``mode_kl`` is 0 for a perfectly balanced histogram, ``log K`` when every high-quality sample sits at one
mode, and NaN when there are no high-quality samples (the histogram is undefined). For samples of the true
mixture the expected ``high_quality`` is ``1 - exp(-num_std^2 / 2)`` (0.9889 at 3 std) when the modes are
well separated.
"""

from __future__ import annotations

import math

import torch


def _as_tensor(x, name: str, shape_hint: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().cpu().to(torch.float64)
    if t.dim() != 2 or t.shape[1] != 2:
        raise ValueError(f"{name} must have shape {shape_hint}, got {tuple(t.shape)}")
    return t


def assign_modes(points, centres) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest centre of each point ``(N,)`` (int64) and the Euclidean distance to it ``(N,)`` (float64).

    Ties go to the centre listed first.
    """
    x = _as_tensor(points, "points", "(N, 2)")  # (N, 2)
    mu = _as_tensor(centres, "centres", "(K, 2)")  # (K, 2)
    if mu.shape[0] == 0:
        raise ValueError("centres must hold at least one mode")
    dist = torch.cdist(x, mu)  # (N, K)
    d, k = dist.min(dim=1)  # (N,), (N,)
    return k, d


def mode_statistics(points, centres, std: float, *, num_std: float = 3.0, min_count: int = 1) -> dict:
    """``{"modes": int, "high_quality": float, "mode_kl": float}`` of ``points`` (N, 2), ``centres`` (K, 2).

    Args:
        points: generated samples, tensor or array ``(N, 2)``, N >= 1.
        centres: the mixture's mode centres ``(K, 2)``.
        std: the per-coordinate std of every mode; a sample is high quality within ``num_std * std``.
        num_std: the quality radius in units of ``std``.
        min_count: high-quality samples a mode needs to count as covered.
    """
    if not std > 0 or not num_std > 0:
        raise ValueError(f"std and num_std must be positive, got std={std}, num_std={num_std}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    k, d = assign_modes(points, centres)  # (N,), (N,)
    if k.numel() == 0:
        raise ValueError("points must hold at least one sample")
    num_modes = int(torch.as_tensor(centres).shape[0])
    good = d <= num_std * std  # (N,)
    counts = torch.bincount(k[good], minlength=num_modes).to(torch.float64)  # (K,)
    total = counts.sum().item()
    kl = math.nan  # no high-quality samples: the histogram is undefined
    if total > 0:
        p = counts / total  # (K,)
        # sum_k p_k log(K p_k) with 0 log 0 = 0; clip the -1e-16 rounding of a uniform histogram
        kl = max(0.0, torch.xlogy(p, p * num_modes).sum().item())
    return {
        "modes": int((counts >= min_count).sum().item()),
        "high_quality": good.double().mean().item(),
        "mode_kl": kl,
    }
