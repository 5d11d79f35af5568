"""Toy 2-D mixtures: the documented centres and std, and samples with those modes, weights and spread."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from improved_gan.data import DATASETS, GaussianMixture2D, is_toy, load_toy
from improved_gan.errors import ConfigError


def test_ring8_centres_and_std():
    ring = load_toy("ring8")
    expected = torch.tensor(
        [[2 * math.cos(k * math.pi / 4), 2 * math.sin(k * math.pi / 4)] for k in range(8)]
    )
    torch.testing.assert_close(ring.centres, expected)
    assert ring.std == 0.02 and ring.num_modes == 8 and ring.name == "ring8"


def test_grid25_centres_and_std():
    grid = load_toy("grid25")
    expected = torch.tensor(list(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2)))
    torch.testing.assert_close(grid.centres, expected, rtol=0, atol=0)
    assert grid.std == 0.05 and grid.num_modes == 25


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_samples_follow_the_mixture(name):
    mixture = load_toy(name)
    n = 50_000
    x = mixture.sample(n, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and x.dtype == torch.float32
    # Independent nearest-centre assignment by brute force.
    d2 = ((x[:, None, :] - mixture.centres[None, :, :]) ** 2).sum(-1)  # (n, K)
    k = d2.argmin(dim=1)
    residual = x - mixture.centres[k]  # (n, 2)
    # Equal weights: each count within 5 binomial standard deviations of n / K.
    p = 1 / mixture.num_modes
    counts = torch.bincount(k, minlength=mixture.num_modes).double()
    torch.testing.assert_close(
        counts, torch.full_like(counts, n * p), rtol=0, atol=5 * math.sqrt(n * p * (1 - p))
    )
    # Isotropic Gaussian residuals of the given std: mean 0, per-axis std, no correlation.
    torch.testing.assert_close(residual.mean(0), torch.zeros(2), rtol=0, atol=5 * mixture.std / math.sqrt(n))
    torch.testing.assert_close(residual.std(0), torch.full((2,), mixture.std), rtol=0.02, atol=0)
    corr = torch.corrcoef(residual.T)[0, 1]
    torch.testing.assert_close(corr, torch.tensor(0.0), rtol=0, atol=5 / math.sqrt(n))


def test_sampling_is_reproducible_with_a_generator():
    ring = load_toy("ring8")
    a = ring.sample(100, generator=torch.Generator().manual_seed(3))
    b = ring.sample(100, generator=torch.Generator().manual_seed(3))
    c = ring.sample(100, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert ring.sample(0).shape == (0, 2)


def test_nearest_mode():
    grid = load_toy("grid25")
    idx, dist = grid.nearest_mode(grid.centres + 0.1)
    assert torch.equal(idx, torch.arange(25))
    torch.testing.assert_close(dist, torch.full((25,), math.sqrt(0.02)))
    with pytest.raises(ValueError):
        grid.nearest_mode(torch.zeros(3, 3))


def test_registry_names_and_errors():
    assert DATASETS == ("fashion-mnist", "mnist", "cifar10", "svhn", "ring8", "grid25")
    assert [is_toy(n) for n in DATASETS] == [False] * 4 + [True] * 2
    with pytest.raises(ConfigError, match="ring9"):
        load_toy("ring9")
    with pytest.raises(ValueError):
        GaussianMixture2D("bad", torch.zeros(3), 0.1)
    with pytest.raises(ValueError):
        GaussianMixture2D("bad", torch.zeros(3, 2), 0.0)
