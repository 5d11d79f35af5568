"""Call-order mistakes with the library's parts give errors (or warnings) that say what to do."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from improved_gan import (
    MinibatchDiscrimination,
    VirtualBatchNorm,
    WeightNormLinear,
    data_dependent_init,
    virtual_batch_reference,
)


def _generator(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), VirtualBatchNorm(6), nn.ReLU(), nn.Linear(6, 3))


# ------------------------------------------------------------------------------------------ VBN: one pass per update
def test_second_backward_after_one_reference_pass_says_to_run_the_pass_again():
    G = _generator()
    z_ref, z1, z2 = torch.randn(8, 4), torch.randn(5, 4), torch.randn(5, 4)
    with virtual_batch_reference(G):
        G(z_ref)
    G(z1).square().sum().backward()
    with pytest.raises(RuntimeError, match=r"with virtual_batch_reference\(G\): G\(z_ref\)"):
        G(z2).square().sum().backward()


def test_discriminator_step_through_g_then_generator_step_is_the_same_error():
    G, D = _generator(), nn.Linear(3, 1)
    z_ref = torch.randn(8, 4)
    with virtual_batch_reference(G):
        G(z_ref)
    D(G(torch.randn(5, 4))).mean().backward()  # D step without detaching G's output
    with pytest.raises(RuntimeError, match="before every generator update"):
        (-D(G(torch.randn(5, 4)))).mean().backward()


def test_a_new_reference_pass_before_each_update_works():
    G = _generator()
    z_ref = torch.randn(8, 4)
    for _ in range(3):
        with virtual_batch_reference(G):
            G(z_ref)
        G(torch.randn(5, 4)).square().sum().backward()


def test_retain_graph_keeps_the_statistics_usable_and_gradients_match():
    G = _generator()
    z_ref, z = torch.randn(8, 4), torch.randn(5, 4)
    with virtual_batch_reference(G):
        G(z_ref)
    G(z).square().sum().backward(retain_graph=True)
    first = [p.grad.clone() for p in G.parameters()]
    G.zero_grad()
    G(z).square().sum().backward()  # the graph was retained: a second backward is legitimate
    for a, p in zip(first, G.parameters()):
        torch.testing.assert_close(p.grad, a)


def test_forward_without_backward_after_consumption_gives_the_vbn_formula():
    """Sampling after the last update (no backward) still works and uses the recorded statistics."""
    G = _generator()
    z_ref, z = torch.randn(8, 4), torch.randn(5, 4)
    with virtual_batch_reference(G):
        G(z_ref)
    G(torch.randn(5, 4)).sum().backward()
    out = G(z).detach().numpy()  # grad enabled, no backward
    # numpy VBN of the first layer's output, weights R/(R+1) and 1/(R+1), then ReLU and the last layer
    lin, vbn, last = G[0], G[1], G[3]
    W, b = lin.weight.detach().numpy().astype(np.float64), lin.bias.detach().numpy().astype(np.float64)
    h_ref, h = z_ref.numpy() @ W.T + b, z.numpy() @ W.T + b
    R = h_ref.shape[0]
    mean = (h + R * h_ref.mean(0)) / (R + 1)
    mean_sq = (h * h + R * (h_ref * h_ref).mean(0)) / (R + 1)
    y = (h - mean) / np.sqrt(mean_sq - mean**2 + vbn.eps)
    expected = np.maximum(y, 0) @ last.weight.detach().numpy().T + last.bias.detach().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------- VBN + data-dependent init
def _wn_generator():
    torch.manual_seed(0)
    return nn.Sequential(WeightNormLinear(4, 6), VirtualBatchNorm(6), nn.ReLU(), WeightNormLinear(6, 3))


def test_data_dependent_init_of_a_vbn_generator_outside_the_reference_context_says_how():
    G = _wn_generator()
    with pytest.raises(
        RuntimeError, match=r"with virtual_batch_reference\(G\): data_dependent_init\(G, z_ref\)"
    ):
        data_dependent_init(G, torch.randn(16, 4))
    assert not bool(G[0].initialized)


def test_data_dependent_init_inside_the_reference_context_initialises_every_layer():
    G = _wn_generator()
    z_ref = torch.randn(64, 4, dtype=torch.float32)
    with virtual_batch_reference(G):
        data_dependent_init(G, z_ref)
    assert all(bool(m.initialized) for m in G if isinstance(m, WeightNormLinear))
    # the first layer's pre-activation on z_ref has mean 0 and (population) std 1 per unit (numpy check)
    v, g, bias = (t.detach().numpy().astype(np.float64) for t in (G[0].v, G[0].g, G[0].bias))
    t = (
        z_ref.numpy().astype(np.float64) @ (g[:, None] * v / np.linalg.norm(v, axis=1, keepdims=True)).T
        + bias
    )
    np.testing.assert_allclose(t.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(t.std(0), 1, atol=1e-4)
    G(torch.randn(5, 4)).sum().backward()  # and it trains afterwards (the init pass recorded statistics)


# --------------------------------------------------------------------------------- minibatch discrimination
@pytest.mark.filterwarnings("ignore:MinibatchDiscrimination")
def test_minibatch_out_features():
    layer = MinibatchDiscrimination(7, num_kernels=3, kernel_dim=2)
    assert (layer.in_features, layer.out_features) == (7, 10)
    assert layer(torch.randn(4, 7)).shape == (4, layer.out_features)
    D = nn.Sequential(nn.Linear(5, 7), layer, nn.Linear(layer.out_features, 1))
    assert D(torch.randn(4, 5)).shape == (4, 1)


def test_minibatch_layer_trained_before_init_warns_once_with_its_batch_mean():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, num_kernels=4, kernel_dim=3)
    x = torch.randn(10, 6)
    # the batch mean of o + bias computed independently: sum over j != i of exp(-L1 distance), plus bias
    M = np.einsum("na,abc->nbc", x.numpy(), layer.T.detach().numpy())
    d = np.abs(M[:, None] - M[None, :]).sum(-1)  # (N, N, B)
    o = np.exp(-d).sum(1) - 1.0 + layer.bias.detach().numpy()  # minus the self term exp(0)
    with pytest.warns(
        UserWarning, match=rf"batch mean {float(o.mean()):.3g} .*data_dependent_init\(D, x_real\)"
    ):
        layer(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(x)  # once per layer


def test_minibatch_layer_does_not_warn_after_init_or_in_eval():
    x = torch.randn(10, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = MinibatchDiscrimination(6, num_kernels=4, kernel_dim=3)
        data_dependent_init(layer, x)
        layer(x)
        fresh = MinibatchDiscrimination(6, num_kernels=4, kernel_dim=3).eval()
        fresh(x)
        with torch.no_grad():
            MinibatchDiscrimination(6, num_kernels=4, kernel_dim=3)(x)
