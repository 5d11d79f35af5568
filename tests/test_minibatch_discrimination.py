"""Minibatch discrimination (section 3.2) against an explicit loop over pairs written here."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

import improved_gan.nn.minibatch_discrimination as mbd_module
from improved_gan.nn import MinibatchDiscrimination, data_dependent_init, minibatch_similarity


def loop_oracle(x: np.ndarray, T: np.ndarray, bias: np.ndarray | None, exclude_self: bool) -> np.ndarray:
    """cat([x, o + bias]) with o[i, b] = sum_{j} exp(-sum_c |M[i,b,c] - M[j,b,c]|), by explicit loops."""
    n, a = x.shape
    _, num_b, num_c = T.shape
    M = np.zeros((n, num_b, num_c))
    for i in range(n):
        for b in range(num_b):
            for c in range(num_c):
                M[i, b, c] = sum(x[i, k] * T[k, b, c] for k in range(a))
    o = np.zeros((n, num_b))
    for i in range(n):
        for j in range(n):
            if exclude_self and i == j:
                continue
            for b in range(num_b):
                o[i, b] += np.exp(-np.abs(M[i, b] - M[j, b]).sum())
    if bias is not None:
        o = o + bias
    return np.concatenate([x, o], axis=1)


def naive_similarity(M: torch.Tensor) -> torch.Tensor:
    """The (N, N, B, C) broadcast, self included; differentiable by plain autograd."""
    return torch.exp(-(M[:, None] - M[None, :]).abs().sum(-1)).sum(1)  # (N, B)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_pair_loop(exclude_self, bias):
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, 4, 3, exclude_self=exclude_self, bias=bias).double()
    with torch.no_grad():
        layer.log_scale.normal_()  # scales away from 1 so that the distances are not tiny or huge
        if bias:
            layer.bias.normal_()
    x = torch.randn(7, 6, dtype=torch.float64)
    b = None if layer.bias is None else _np(layer.bias)
    expected = loop_oracle(_np(x), _np(layer.T), b, exclude_self)
    torch.testing.assert_close(layer(x), torch.from_numpy(expected))


def test_self_term_is_exactly_one_per_kernel():
    torch.manual_seed(1)
    M = torch.randn(9, 5, 2, dtype=torch.float64)
    with_self = minibatch_similarity(M, exclude_self=False)
    without = minibatch_similarity(M, exclude_self=True)
    torch.testing.assert_close(with_self - without, torch.ones(9, 5, dtype=torch.float64), rtol=0, atol=1e-15)


def test_excluded_self_term_does_not_swamp_small_terms_in_float32():
    M = torch.tensor([[[0.0, 0.0]], [[10.0, 10.0]]])  # two examples at L1 distance 20, one kernel
    o = minibatch_similarity(M, exclude_self=True)
    torch.testing.assert_close(o, torch.full((2, 1), float(np.exp(-20.0))), rtol=1e-6, atol=0)


def test_T_is_weight_normalised_over_A():
    torch.manual_seed(2)
    layer = MinibatchDiscrimination(5, 3, 2)
    with torch.no_grad():
        layer.log_scale.normal_()
    theta, log_scale = _np(layer.theta), _np(layer.log_scale)
    expected = theta * np.exp(log_scale)[None] / np.sqrt((theta**2).sum(axis=0, keepdims=True))
    torch.testing.assert_close(layer.T.double(), torch.from_numpy(expected), rtol=1e-6, atol=1e-7)
    assert layer.T.shape == (5, 3, 2) and layer.bias.shape == (3,)
    torch.testing.assert_close(layer.bias, torch.full((3,), -1.0))

    plain = MinibatchDiscrimination(5, 3, 2, weight_norm=False, bias=False)
    assert plain.T is plain.theta and plain.bias is None and plain.log_scale is None


def test_inputs_flattened_from_dim_1():
    torch.manual_seed(3)
    layer = MinibatchDiscrimination(12, 4, 3)
    x = torch.randn(5, 3, 2, 2)
    out = layer(x)
    assert out.shape == (5, 16)
    torch.testing.assert_close(out, layer(x.reshape(5, 12)))


def test_permutation_equivariance():
    torch.manual_seed(4)
    layer = MinibatchDiscrimination(8, 6, 4)
    x = torch.randn(11, 8)
    perm = torch.randperm(11)
    torch.testing.assert_close(layer(x[perm]), layer(x)[perm])


def test_batch_of_one_gives_the_bias():
    layer = MinibatchDiscrimination(4, 3, 2)
    out = layer(torch.randn(1, 4))
    torch.testing.assert_close(out[:, 4:], layer.bias.detach()[None])


@pytest.mark.parametrize("bad", [torch.randn(5), torch.randn(5, 7), torch.randn(5, 2, 3)])
def test_shape_errors(bad):
    layer = MinibatchDiscrimination(8, 3, 2)
    with pytest.raises(ValueError, match="MinibatchDiscrimination"):
        layer(bad)
    with pytest.raises(ValueError, match=r"\(N, B, C\)"):
        minibatch_similarity(torch.randn(4, 5))


def test_gradcheck_layer_inputs_and_parameters():
    torch.manual_seed(5)
    layer = MinibatchDiscrimination(4, 3, 2).double()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in layer.named_parameters()]

    def f(x, *ps):
        return functional_call(layer, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("exclude_self", [True, False])
def test_blocked_path_matches_loop_and_naive_gradient(monkeypatch, exclude_self):
    # A budget of 7 distances forces one kernel and a few rows per block: the large-N code path.
    monkeypatch.setattr(mbd_module, "_block_elements", lambda device: 7)
    torch.manual_seed(6)
    M = torch.randn(10, 3, 2, dtype=torch.float64, requires_grad=True)
    o = minibatch_similarity(M, exclude_self=exclude_self)
    expected = loop_oracle(np.eye(10), _np(M), None, exclude_self)[:, 10:]  # M = eye(N) @ T with T = M
    torch.testing.assert_close(o, torch.from_numpy(expected))

    g = torch.randn(10, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad(o, M, g)
    (expected_grad,) = torch.autograd.grad(naive_similarity(M), M, g)
    torch.testing.assert_close(grad, expected_grad)
    assert torch.autograd.gradcheck(lambda m: minibatch_similarity(m, exclude_self=exclude_self), (M,))


@pytest.mark.parametrize("weight_norm", [True, False])
def test_data_dependent_init_matches_reference_recipe(weight_norm):
    torch.manual_seed(7)
    layer = MinibatchDiscrimination(6, 5, 3, weight_norm=weight_norm).double()
    x = torch.randn(20, 6, dtype=torch.float64)
    out = data_dependent_init(layer, x)
    assert bool(layer.initialized)
    torch.testing.assert_close(out, layer(x))

    M = np.einsum("na,abc->nbc", _np(x), _np(layer.T))  # (N, B, C)
    dist = np.abs(M[:, None] - M[None, :]).sum(-1)  # (N, N, B)
    dist[np.arange(20), np.arange(20)] = np.inf
    half_mean_nearest = 0.5 * dist.min(axis=1).mean(axis=0)  # (B,)
    torch.testing.assert_close(torch.from_numpy(half_mean_nearest), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(out[:, 6:].mean(0), torch.zeros(5, dtype=torch.float64))


def test_data_dependent_init_needs_two_examples():
    with pytest.raises(ValueError, match="at least 2"):
        data_dependent_init(MinibatchDiscrimination(3, 2, 2), torch.randn(1, 3))


def test_state_dict_holds_all_state():
    layer = MinibatchDiscrimination(4, 3, 2)
    assert set(layer.state_dict()) == {"theta", "log_scale", "bias", "initialized"}
    fresh = MinibatchDiscrimination(4, 3, 2)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(6, 4)
    torch.testing.assert_close(fresh(x), layer(x))


@pytest.mark.parametrize("exclude_self", [True, False])
def test_far_pairs_are_negligible_not_slow(exclude_self):
    """Distances above 87 (where float32 exp underflows, on a slow path) are clamped: each such pair adds at most
    exp(-87) = 1.6e-38 to o, against the exact sum; near pairs are exact; gradients stay finite."""
    rng = np.random.default_rng(4)
    M_np = rng.normal(size=(12, 3, 2))
    M_np[6:] += 300.0  # two far groups: cross-group distances ~600 (exp underflows), within-group ~2
    exact = np.zeros((12, 3))
    for i in range(12):
        for j in range(12):
            if exclude_self and i == j:
                continue
            exact[i] += np.exp(-np.abs(M_np[i] - M_np[j]).sum(-1))
    for dtype in (torch.float32, torch.float64):
        M = torch.tensor(M_np, dtype=dtype, requires_grad=True)
        o = minibatch_similarity(M, exclude_self=exclude_self)
        err = np.abs(_np(o) - exact)
        rtol = 1e-4 if dtype == torch.float32 else 1e-12  # float32 holds coordinates near 300 to ~3e-5
        assert (err <= 6 * np.exp(-87.0) + rtol * exact).all()
        o.sum().backward()
        assert torch.isfinite(M.grad).all()
        # the gradient is the within-group one: the far group contributes nothing measurable
        M_near = torch.tensor(M_np[:6], dtype=torch.float64, requires_grad=True)
        naive = naive_similarity(M_near)
        naive.sum().backward()
        atol = 1e-5 if dtype == torch.float32 else 1e-12
        np.testing.assert_allclose(_np(M.grad[:6]), _np(M_near.grad), rtol=rtol, atol=atol)
