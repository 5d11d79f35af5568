"""Virtual batch norm (section 3.4): VBN of y with reference X is batch norm over [X; y] evaluated at y."""

import numpy as np
import pytest
import torch
from torch import nn

from improved_gan.nn import VirtualBatchNorm, virtual_batch_reference

EPS = 1e-5


def numpy_batchnorm(batch: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Plain batch norm over axis 0 and the spatial axes (population variance), per channel."""
    axes = (0, *range(2, batch.ndim))
    shape = (1, -1) + (1,) * (batch.ndim - 2)
    mean = batch.mean(axis=axes).reshape(shape)
    var = batch.var(axis=axes).reshape(shape)
    return (batch - mean) / np.sqrt(var + EPS) * gamma.reshape(shape) + beta.reshape(shape)


def vbn_oracle(ref: np.ndarray, ys: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Each y alone appended to the reference batch, batch-normed together, read off at y."""
    return np.stack([numpy_batchnorm(np.concatenate([ref, y[None]]), gamma, beta)[-1] for y in ys])


def _make(num_features: int) -> VirtualBatchNorm:
    vbn = VirtualBatchNorm(num_features).double()
    with torch.no_grad():
        vbn.weight.uniform_(0.5, 2.0)
        vbn.bias.normal_()
    return vbn


@pytest.mark.parametrize("shape", [(3,), (3, 4, 5), (3, 6)])
def test_equals_batchnorm_over_reference_plus_example(shape):
    torch.manual_seed(0)
    vbn = _make(shape[0])
    ref = torch.randn(10, *shape, dtype=torch.float64) * 2 + 1
    ys = torch.randn(4, *shape, dtype=torch.float64) * 3 - 1
    with virtual_batch_reference(vbn):
        ref_out = vbn(ref)
    gamma, beta = vbn.weight.detach().numpy(), vbn.bias.detach().numpy()
    torch.testing.assert_close(ref_out, torch.from_numpy(numpy_batchnorm(ref.numpy(), gamma, beta)))
    expected = vbn_oracle(ref.numpy(), ys.numpy(), gamma, beta)
    torch.testing.assert_close(vbn(ys), torch.from_numpy(expected))


def test_contract_formula_for_spatial_inputs():
    torch.manual_seed(1)
    vbn = VirtualBatchNorm(2, affine=False).double()
    ref = torch.randn(5, 2, 3, 3, dtype=torch.float64)
    y = torch.randn(2, 2, 3, 3, dtype=torch.float64) + 2
    with virtual_batch_reference(vbn):
        vbn(ref)
    X, Y = ref.numpy(), y.numpy()
    R = X.shape[0]
    m = (Y.mean(axis=(2, 3)) + R * X.mean(axis=(0, 2, 3))) / (R + 1)  # (N, C)
    s = ((Y**2).mean(axis=(2, 3)) + R * (X**2).mean(axis=(0, 2, 3))) / (R + 1)  # (N, C)
    expected = (Y - m[:, :, None, None]) / np.sqrt(s - m**2 + EPS)[:, :, None, None]
    torch.testing.assert_close(vbn(y), torch.from_numpy(expected))


def test_output_does_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(2)
    vbn = _make(3)
    with virtual_batch_reference(vbn):
        vbn(torch.randn(8, 3, 4, dtype=torch.float64))
    batch = torch.randn(6, 3, 4, dtype=torch.float64)
    together = vbn(batch)
    for i in range(6):
        torch.testing.assert_close(together[i : i + 1], vbn(batch[i : i + 1]))


def test_train_and_eval_modes_agree():
    torch.manual_seed(3)
    vbn = _make(4)
    with virtual_batch_reference(vbn):
        vbn(torch.randn(7, 4, dtype=torch.float64))
    y = torch.randn(3, 4, dtype=torch.float64)
    train_out = vbn.train()(y)
    torch.testing.assert_close(vbn.eval()(y), train_out, rtol=0, atol=0)


def _generator() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 6), VirtualBatchNorm(6), nn.ReLU(), nn.Linear(6, 2)).double()


def test_gradients_flow_through_the_reference_pass():
    torch.manual_seed(4)
    G = _generator()
    z_ref = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    z = torch.randn(5, 4, dtype=torch.float64)
    w = torch.randn(5, 2, dtype=torch.float64)
    with virtual_batch_reference(G):
        G(z_ref)
    (G(z) * w).sum().backward()
    assert z_ref.grad is not None and z_ref.grad.abs().sum() > 0

    # The same loss written out by hand: the reference statistics are functions of the first layer's weight.
    lin1, vbn, lin2 = G[0], G[1], G[3]
    W1 = lin1.weight.detach().clone().requires_grad_(True)
    z_ref2 = z_ref.detach().clone().requires_grad_(True)
    h_ref, h = z_ref2 @ W1.T + lin1.bias, z @ W1.T + lin1.bias
    R = h_ref.shape[0]
    mean = (h + R * h_ref.mean(0)) / (R + 1)
    var = (h * h + R * (h_ref * h_ref).mean(0)) / (R + 1) - mean**2
    out = lin2(torch.relu((h - mean) / torch.sqrt(var + EPS) * vbn.weight + vbn.bias))
    (out * w).sum().backward()
    torch.testing.assert_close(lin1.weight.grad, W1.grad)
    torch.testing.assert_close(z_ref.grad, z_ref2.grad)


def test_gradcheck_through_reference_and_example():
    torch.manual_seed(5)
    vbn = _make(2)

    def f(ref, y):
        with virtual_batch_reference(vbn):
            vbn(ref)
        return vbn(y)

    ref = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (ref, y))


def test_state_dict_round_trip_without_new_reference_pass():
    torch.manual_seed(6)
    G = _generator()
    with virtual_batch_reference(G):
        G(torch.randn(9, 4, dtype=torch.float64))
    state = G.state_dict()
    assert {"1.ref_mean", "1.ref_mean_sq", "1.ref_size"} <= set(state)
    assert int(state["1.ref_size"]) == 9
    fresh = _generator()
    fresh.load_state_dict(state)
    z = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(fresh(z), G(z))


def test_loading_replaces_statistics_recorded_in_this_process():
    torch.manual_seed(7)
    a, b = _make(3), _make(3)
    with virtual_batch_reference(a):
        a(torch.randn(6, 3, dtype=torch.float64))
    with virtual_batch_reference(b):
        b(torch.randn(6, 3, dtype=torch.float64) * 5)
    a.load_state_dict(b.state_dict())
    y = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(a(y), b(y))


def test_batch_of_one_and_reference_of_one():
    vbn = VirtualBatchNorm(2).double()
    with virtual_batch_reference(vbn):
        out = vbn(torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.zeros(1, 2, dtype=torch.float64))  # its own stats: x - mean = 0
    y = torch.tensor([[3.0, 2.0]], dtype=torch.float64)
    # [ref; y] = [[1, 2], [3, 2]]: channel 0 normalises to +1 (up to eps), channel 1 is constant -> 0.
    expected = torch.tensor([[1.0 / np.sqrt(1.0 + EPS), 0.0]], dtype=torch.float64)
    torch.testing.assert_close(vbn(y), expected)


def test_errors():
    vbn = VirtualBatchNorm(3)
    with pytest.raises(RuntimeError, match="reference pass"):
        vbn(torch.randn(2, 3))
    with pytest.raises(ValueError, match="VirtualBatchNorm"):
        vbn(torch.randn(2, 4))
    with pytest.raises(ValueError, match="VirtualBatchNorm"):
        vbn(torch.randn(3))
    with pytest.raises(ValueError, match="no VirtualBatchNorm"):
        with virtual_batch_reference(nn.Linear(2, 2)):
            pass
    assert vbn.num_features == 3 and vbn.eps == 1e-5


def test_deepcopy_after_a_reference_pass_with_gradients():
    import copy

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), VirtualBatchNorm(4))
    ref = torch.randn(6, 3)
    with virtual_batch_reference(net):
        net(ref)  # live statistics attached to the autograd graph
    clone = copy.deepcopy(net)
    x = torch.randn(2, 3)
    torch.testing.assert_close(clone(x), net(x))
