"""The toy networks' deviations (models/toy.py): median-distance init of minibatch discrimination, defaults."""

import numpy as np
import pytest
import torch

from improved_gan import models as M
from improved_gan.models.toy import MedianInitMinibatch
from improved_gan.nn import MinibatchDiscrimination, data_dependent_init


def _kernel_space(layer, x):
    """M = f T (N, B, C) in numpy, from the layer's parameters (T = exp(log_scale) theta / ||theta||)."""
    theta = layer.theta.detach().double().numpy()  # (A, B, C)
    T = theta * np.exp(layer.log_scale.detach().double().numpy()) / np.linalg.norm(theta, axis=0)
    return np.einsum("na,abc->nbc", x.double().numpy(), T)


@pytest.mark.parametrize("median", [0.5, 1.0, 3.0])
def test_init_sets_each_kernels_median_pairwise_distance_and_centres_o(median):
    torch.manual_seed(0)
    layer = MedianInitMinibatch(7, 4, 3, median=median)
    x = torch.randn(21, 7) * 5 + 2
    data_dependent_init(layer, x)
    m = _kernel_space(layer, x)  # (N, B, C)
    n = x.shape[0]
    for b in range(4):
        d = [np.abs(m[i, b] - m[j, b]).sum() for i in range(n) for j in range(i + 1, n)]
        # torch's median of an even count is the lower middle value
        assert sorted(d)[(len(d) - 1) // 2] == pytest.approx(median, rel=1e-5)
    o = np.array(
        [
            [sum(np.exp(-np.abs(m[i, b] - m[j, b]).sum()) for j in range(n) if j != i) for b in range(4)]
            for i in range(n)
        ]
    )  # (N, B)
    out = layer(x).detach().double().numpy()  # (N, A + B)
    np.testing.assert_allclose(out[:, 7:], o + layer.bias.detach().double().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out[:, 7:].mean(axis=0), np.zeros(4), atol=1e-5)


def test_forward_is_the_papers_layer():
    torch.manual_seed(1)
    a, b = MedianInitMinibatch(6, 3, 2), MinibatchDiscrimination(6, 3, 2)
    b.load_state_dict(a.state_dict())
    x = torch.randn(9, 6)
    torch.testing.assert_close(a(x), b(x))


def test_toy_defaults():
    D = M.ToyDiscriminator(1, minibatch_kernels=5)
    assert isinstance(D.minibatch, MedianInitMinibatch) and D.minibatch.median == 1.0
    assert all(p.requires_grad for p in D.parameters())  # hidden scales trained
    assert M.ToyDiscriminator(1).minibatch is None
    G = M.ToyGenerator()
    assert G.fc1.out_features == 64 and G.fc2.out_features == 64
    with pytest.raises(ValueError, match="median"):
        MedianInitMinibatch(4, 2, median=0.0)
