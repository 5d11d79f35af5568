"""Two-dimensional Gaussian mixtures for studying mode collapse (the failure minibatch discrimination
targets).

The paper (Section 3.2) motivates minibatch discrimination by the generator collapsing to a single point;
these mixtures make collapse measurable, since each sample can be assigned to its nearest mode. The paper
itself has no toy experiment; we follow the convention of the later mode-collapse literature (e.g. Unrolled
GANs, Metz et al. 2017; VEEGAN; PacGAN):

- ``ring8``: 8 modes evenly spaced on a circle of radius 2 (the first at angle 0, (2, 0)), std 0.02.
- ``grid25``: 25 modes at ``{-4, -2, 0, 2, 4}^2`` (x-major order), std 0.05.

Each mode has weight 1/K; the samples are ``centre[k] + std * eps`` with ``k ~ U{0..K-1}``, ``eps ~ N(0,
I_2)``. A common quality criterion counts a sample as "high quality" when it lies within 3 std of its nearest
mode, and a mode as covered when it receives such samples (:meth:`~improved_gan.data.GaussianMixture2D.nearest_mode` supports
both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from improved_gan.errors import ConfigError

__all__ = ["TOY_DATASETS", "GaussianMixture2D", "grid25", "load_toy", "ring8"]


@dataclass(frozen=True, eq=False, repr=False)
class GaussianMixture2D:
    """An equal-weight mixture of isotropic Gaussians in 2-D.

    Attributes:
        name: the registry name.
        centres: ``(K, 2)`` float32 tensor of mode centres.
        std: the standard deviation of every mode (per coordinate).
    """

    name: str
    centres: torch.Tensor
    std: float

    def __post_init__(self) -> None:
        if self.centres.ndim != 2 or self.centres.shape[1] != 2 or self.centres.shape[0] == 0:
            raise ValueError(f"centres must have shape (K, 2) with K > 0, got {tuple(self.centres.shape)}")
        if not self.std > 0:
            raise ValueError(f"std must be positive, got {self.std}")

    def __repr__(self) -> str:
        """One line: the name, the number of modes and the std (not the centres' tensor)."""
        return f"GaussianMixture2D(name={self.name!r}, num_modes={self.num_modes}, std={self.std:g})"

    @property
    def num_modes(self) -> int:
        """K, the number of modes."""
        return int(self.centres.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples, ``(n, 2)`` float32 (CPU; pass a seeded generator for reproducibility)."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        k = torch.randint(self.num_modes, (n,), generator=generator)  # (n,)
        eps = torch.randn(n, 2, generator=generator)  # (n, 2)
        return (self.centres[k] + self.std * eps).to(torch.float32)  # (n, 2)

    def nearest_mode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For points ``x (n, 2)``: each point's nearest centre's index ``(n,)`` and the distance ``(n,)``."""
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"x must have shape (n, 2), got {tuple(x.shape)}")
        d = torch.cdist(x.to(torch.float64), self.centres.to(x.device, torch.float64))  # (n, K)
        dist, idx = d.min(dim=1)  # (n,), (n,)
        return idx, dist.to(x.dtype if x.is_floating_point() else torch.float32)


def ring8() -> GaussianMixture2D:
    """8 modes on a circle of radius 2, std 0.02."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)  # (8,)
    centres = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (8, 2)
    return GaussianMixture2D("ring8", centres.to(torch.float32), 0.02)


def grid25() -> GaussianMixture2D:
    """25 modes at {-4, -2, 0, 2, 4}^2, std 0.05."""
    axis = torch.arange(-4.0, 5.0, 2.0)  # (5,)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")  # (5, 5) each
    centres = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (25, 2)
    return GaussianMixture2D("grid25", centres.to(torch.float32), 0.05)


TOY_DATASETS = {"ring8": ring8, "grid25": grid25}


def load_toy(name: str) -> GaussianMixture2D:
    """The toy mixture registered as ``name`` (``"ring8"`` or ``"grid25"``, any case)."""
    key = str(name).strip().lower()
    if key not in TOY_DATASETS:
        raise ConfigError(f"unknown toy data set {name!r} (expected one of {', '.join(TOY_DATASETS)})")
    return TOY_DATASETS[key]()
