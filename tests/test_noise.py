"""GaussianNoise: N(0, sigma^2) noise in training mode only."""

import pytest
import torch

from improved_gan.nn import GaussianNoise


def test_eval_mode_is_exact_identity():
    x = torch.randn(4, 5)
    noise = GaussianNoise(0.5).eval()
    assert torch.equal(noise(x), x)


def test_training_noise_is_sigma_times_standard_normal_draw():
    x = torch.randn(3, 7, 2)
    noise = GaussianNoise(0.3).train()
    torch.manual_seed(11)
    out = noise(x)
    torch.manual_seed(11)
    expected = x + 0.3 * torch.randn(3, 7, 2)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_training_noise_has_zero_mean_and_std_sigma():
    sigma, n = 0.5, 1_000_000
    torch.manual_seed(12)
    x = torch.full((n,), 2.0, dtype=torch.float64)
    eps = GaussianNoise(sigma)(x) - x
    # Standard errors: mean sigma/sqrt(n) = 5e-4, std about sigma/sqrt(2n) = 3.5e-4; allow 5 of each.
    zero, target = torch.tensor(0.0, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64)
    torch.testing.assert_close(eps.mean(), zero, rtol=0, atol=5 * sigma / n**0.5)
    torch.testing.assert_close(eps.std(), target, rtol=0, atol=5 * sigma / (2 * n) ** 0.5)


def test_zero_sigma_gradient_and_errors():
    x = torch.randn(3, requires_grad=True)
    assert torch.equal(GaussianNoise(0.0)(x), x)
    GaussianNoise(0.7)(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(3))
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(-0.1)
    assert GaussianNoise(0.2).state_dict() == {}
