"""Minibatch discrimination and virtual batch norm under bfloat16 autocast: they compute in float32 inside.

References are float64 computations written here (numpy pair sums, a numpy batch norm over the reference batch
plus one example, a naive broadcast differentiated by plain autograd); the inputs are rounded to bfloat16 first,
as the output of an autocast layer before them would be.
"""

import numpy as np
import pytest
import torch

from improved_gan.nn import (
    MinibatchDiscrimination,
    VirtualBatchNorm,
    minibatch_similarity,
    virtual_batch_reference,
)

BF16_EPS = 2.0**-8  # bfloat16's relative spacing (8 significant bits)


def _bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def mbd_reference(x: np.ndarray, T: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """cat([x, o + bias]), o[i, b] = sum_{j != i} exp(-sum_c |M[i,b,c] - M[j,b,c]|), M = x T, in float64."""
    M = np.einsum("na,abc->nbc", x, T)  # (N, B, C)
    dist = np.abs(M[:, None] - M[None, :]).sum(-1)  # (N, N, B)
    K = np.exp(-dist)
    K[np.arange(len(x)), np.arange(len(x))] = 0.0  # j != i
    return np.concatenate([x, K.sum(1) + bias], axis=1)


def naive_mbd(x: torch.Tensor, T: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The same in torch by broadcasting (N, N, B, C), differentiable by plain autograd."""
    M = torch.einsum("na,abc->nbc", x, T)
    K = torch.exp(-(M[:, None] - M[None, :]).abs().sum(-1))  # (N, N, B)
    K = K * (1 - torch.eye(len(x), dtype=K.dtype))[:, :, None]
    return torch.cat([x, K.sum(1) + bias], dim=1)


def _layer(seed: int) -> MinibatchDiscrimination:
    torch.manual_seed(seed)
    layer = MinibatchDiscrimination(12, 6, 3)
    with torch.no_grad():
        layer.log_scale.fill_(1.0)  # distances of a few units: neither all ~0 nor all underflowing
        layer.bias.normal_()
        layer.initialized.fill_(True)  # parameters set by hand here, in place of the data-dependent init
    return layer


def test_minibatch_discrimination_forward_and_backward_under_bf16_autocast_match_float64():
    layer = _layer(0)
    x = torch.randn(9, 12).to(torch.bfloat16).requires_grad_(True)  # what an autocast layer before it gives
    with _bf16_autocast():
        out = layer(x)
    assert out.dtype == torch.bfloat16 and out.shape == (9, 18)
    g = torch.randn(9, 18).to(torch.bfloat16).float()  # exact in bfloat16, the output's dtype
    out.float().backward(g)  # raised NotImplementedError ("cdist" for BFloat16) before

    x64, T64 = x.detach().double(), layer.T.detach().double()
    bias64 = layer.bias.detach().double()
    expected = mbd_reference(x64.numpy(), T64.numpy(), bias64.numpy())
    # float32 inside, one rounding to bfloat16 at the output
    torch.testing.assert_close(out.double(), torch.from_numpy(expected), rtol=BF16_EPS, atol=1e-6)

    xr = x64.clone().requires_grad_(True)
    theta = layer.theta.detach().double().requires_grad_(True)
    log_scale = layer.log_scale.detach().double().requires_grad_(True)
    bias = bias64.clone().requires_grad_(True)
    T = theta * (log_scale.exp() / theta.norm(dim=0))
    naive_mbd(xr, T, bias).backward(g.double())
    # a bfloat16 gradient: the sum of two bfloat16 parts (through the copy of x and through M), each rounded
    torch.testing.assert_close(
        x.grad.double(), xr.grad, rtol=BF16_EPS, atol=BF16_EPS * xr.grad.abs().max().item()
    )
    for p, ref in ((layer.theta, theta), (layer.log_scale, log_scale), (layer.bias, bias)):
        assert p.grad.dtype == torch.float32
        torch.testing.assert_close(p.grad.double(), ref.grad, rtol=1e-4, atol=1e-5)


def test_minibatch_discrimination_of_a_float32_input_under_autocast_is_float32_accurate():
    # Before, the projection M = x T ran as a bfloat16 matmul: distances off by about 1 %.
    layer = _layer(1)
    x = torch.randn(9, 12)
    with _bf16_autocast():
        out = layer(x)
    assert out.dtype == torch.float32
    expected = mbd_reference(
        x.double().numpy(), layer.T.detach().double().numpy(), layer.bias.detach().double().numpy()
    )
    torch.testing.assert_close(out.double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-6)


def test_minibatch_similarity_of_a_bf16_tensor_is_computed_in_float32():
    torch.manual_seed(2)
    M = torch.randn(8, 4, 3).to(torch.bfloat16).requires_grad_(True)
    o = minibatch_similarity(M)
    assert o.dtype == torch.bfloat16
    g = torch.randn(8, 4)
    o.float().backward(g)
    M64 = M.detach().double().requires_grad_(True)
    K = (
        torch.exp(-(M64[:, None] - M64[None, :]).abs().sum(-1))
        * (1 - torch.eye(8, dtype=torch.float64))[:, :, None]
    )
    K.sum(1).backward(g.double())
    torch.testing.assert_close(o.double(), K.sum(1).detach(), rtol=BF16_EPS, atol=1e-6)
    torch.testing.assert_close(
        M.grad.double(), M64.grad, rtol=BF16_EPS, atol=BF16_EPS * M64.grad.abs().max().item()
    )


def vbn_reference(
    ref: np.ndarray, ys: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> np.ndarray:
    """Each y appended to the reference batch, batch-normed over axis 0 (population variance), read off at y."""
    out = []
    for y in ys:
        batch = np.concatenate([ref, y[None]])
        out.append((y - batch.mean(0)) / np.sqrt(batch.var(0) + eps) * gamma + beta)
    return np.stack(out)


@pytest.mark.parametrize("shift", [2.0, 4.0])
def test_vbn_statistics_of_bf16_inputs_are_float32_accurate_far_from_zero(shift):
    # mean / std = shift: E[x^2] - E[x]^2 cancels; in bfloat16 the variance was 6 % (2) and 20 % (4) off
    torch.manual_seed(3)
    vbn = VirtualBatchNorm(5)
    with torch.no_grad():
        vbn.weight.uniform_(0.5, 2.0)
        vbn.bias.normal_()
    ref = (shift + torch.randn(64, 5)).to(torch.bfloat16)
    ys = (shift + torch.randn(16, 5)).to(torch.bfloat16)
    with _bf16_autocast():
        with virtual_batch_reference(vbn):
            ref_out = vbn(ref)
        out = vbn(ys)
    assert ref_out.dtype == out.dtype == torch.bfloat16
    gamma, beta = vbn.weight.detach().double().numpy(), vbn.bias.detach().double().numpy()
    R = ref.double().numpy()
    var = R.var(0)
    torch.testing.assert_close(
        vbn.ref_mean_sq - vbn.ref_mean**2, torch.from_numpy(var).float(), rtol=1e-4, atol=1e-5
    )
    expected_ref = (R - R.mean(0)) / np.sqrt(var + vbn.eps) * gamma + beta
    torch.testing.assert_close(ref_out.double(), torch.from_numpy(expected_ref), rtol=BF16_EPS, atol=BF16_EPS)
    expected = vbn_reference(R, ys.double().numpy(), gamma, beta, vbn.eps)
    torch.testing.assert_close(out.double(), torch.from_numpy(expected), rtol=BF16_EPS, atol=BF16_EPS)
    # the normalised reference batch has unit variance per channel (before gamma, beta) to bfloat16 rounding
    unit = (ref_out.detach().double().numpy() - beta) / gamma
    np.testing.assert_allclose(unit.var(0), 1.0, rtol=0.01)


def test_vbn_gradients_under_bf16_autocast_match_float64():
    torch.manual_seed(4)
    vbn = VirtualBatchNorm(3)
    ref = (4 + torch.randn(20, 3)).to(torch.bfloat16).requires_grad_(True)
    ys = (4 + torch.randn(6, 3)).to(torch.bfloat16).requires_grad_(True)
    g = torch.randn(6, 3)
    with _bf16_autocast():
        with virtual_batch_reference(vbn):
            vbn(ref)
        out = vbn(ys)
    out.float().backward(g)

    ref64 = ref.detach().double().requires_grad_(True)
    ys64 = ys.detach().double().requires_grad_(True)
    m_ref, s_ref = ref64.mean(0), (ref64 * ref64).mean(0)
    mean = (ys64 + 20 * m_ref) / 21
    var = (ys64 * ys64 + 20 * s_ref) / 21 - mean * mean
    ((ys64 - mean) / torch.sqrt(var + vbn.eps)).backward(g.double())
    torch.testing.assert_close(ys.grad.double(), ys64.grad, rtol=4 * BF16_EPS, atol=1e-2)
    torch.testing.assert_close(ref.grad.double(), ref64.grad, rtol=4 * BF16_EPS, atol=1e-3)
