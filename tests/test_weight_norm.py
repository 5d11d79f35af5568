"""Weight-normalised layers and data-dependent init (Salimans & Kingma 2016), checked with numpy."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from improved_gan.nn import (
    MinibatchDiscrimination,
    WeightNormConv2d,
    WeightNormConvTranspose2d,
    WeightNormLinear,
    data_dependent_init,
)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def numpy_weight(v: np.ndarray, g: np.ndarray, unit_axis: int) -> np.ndarray:
    axes = tuple(d for d in range(v.ndim) if d != unit_axis)
    shape = [1] * v.ndim
    shape[unit_axis] = -1
    return v * (g / np.sqrt((v**2).sum(axis=axes))).reshape(shape)


LAYERS = [
    (lambda: WeightNormLinear(6, 4), (16, 6), 0, -1),
    (lambda: WeightNormConv2d(3, 5, 3, stride=2, padding=1), (4, 3, 7, 7), 0, 1),
    (
        lambda: WeightNormConvTranspose2d(3, 5, (3, 2), stride=2, padding=1, output_padding=1),
        (4, 3, 5, 5),
        1,
        1,
    ),
]


@pytest.mark.parametrize("make, in_shape, unit_axis_v, unit_axis_out", LAYERS)
def test_weight_is_g_v_over_norm_v(make, in_shape, unit_axis_v, unit_axis_out):
    torch.manual_seed(0)
    layer = make()
    with torch.no_grad():
        layer.g.uniform_(0.5, 2.0)
    expected = numpy_weight(_np(layer.v), _np(layer.g), unit_axis_v)
    torch.testing.assert_close(layer.weight.double(), torch.from_numpy(expected), rtol=1e-6, atol=1e-7)


def test_forward_matches_plain_layers_with_that_weight():
    torch.manual_seed(1)
    lin = WeightNormLinear(6, 4)
    x = torch.randn(3, 6)
    ref = nn.Linear(6, 4)
    ref.load_state_dict({"weight": lin.weight.detach(), "bias": lin.bias.detach()})
    torch.testing.assert_close(lin(x), ref(x))

    conv = WeightNormConv2d(3, 5, 3, stride=2, padding=1)
    ref_conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    ref_conv.load_state_dict({"weight": conv.weight.detach(), "bias": conv.bias.detach()})
    x = torch.randn(2, 3, 9, 9)
    assert conv(x).shape == (2, 5, 5, 5)
    torch.testing.assert_close(conv(x), ref_conv(x))

    deconv = WeightNormConvTranspose2d(3, 5, 5, stride=2, padding=2, output_padding=1)
    ref_deconv = nn.ConvTranspose2d(3, 5, 5, stride=2, padding=2, output_padding=1)
    ref_deconv.load_state_dict({"weight": deconv.weight.detach(), "bias": deconv.bias.detach()})
    x = torch.randn(2, 3, 4, 4)
    assert deconv(x).shape == (2, 5, 8, 8)  # the reference generator's 4 -> 8 upsampling
    torch.testing.assert_close(deconv(x), ref_deconv(x))


@pytest.mark.parametrize("init_scale", [1.0, 0.1])
@pytest.mark.parametrize("make, in_shape, unit_axis_v, unit_axis_out", LAYERS)
def test_init_gives_zero_mean_and_init_scale_std(make, in_shape, unit_axis_v, unit_axis_out, init_scale):
    torch.manual_seed(2)
    layer = make().double()
    layer.init_scale = init_scale
    x = torch.randn(in_shape, dtype=torch.float64) * 3 + 1
    out = data_dependent_init(layer, x)
    assert bool(layer.initialized)
    torch.testing.assert_close(out, layer(x))
    t = _np(out)
    axes = tuple(d for d in range(t.ndim) if d != unit_axis_out % t.ndim)
    units = t.shape[unit_axis_out]
    np.testing.assert_allclose(t.mean(axis=axes), np.zeros(units), atol=1e-10)
    np.testing.assert_allclose(t.std(axis=axes), np.full(units, init_scale), rtol=1e-10)


def test_init_without_bias_sets_only_the_scale():
    torch.manual_seed(3)
    layer = WeightNormLinear(5, 3, bias=False, init_scale=0.5).double()
    x = torch.randn(40, 5, dtype=torch.float64) + 2
    out = _np(data_dependent_init(layer, x))
    np.testing.assert_allclose(out.std(axis=0), np.full(3, 0.5), rtol=1e-10)
    assert layer.bias is None


def test_init_runs_in_forward_order():
    torch.manual_seed(4)
    first, second = WeightNormLinear(5, 8), WeightNormLinear(8, 3, init_scale=0.1)
    net = nn.Sequential(first, nn.ReLU(), second).double()
    x = torch.randn(64, 5, dtype=torch.float64)
    data_dependent_init(net, x)
    h = _np(first(x))
    np.testing.assert_allclose(h.mean(0), np.zeros(8), atol=1e-10)
    np.testing.assert_allclose(h.std(0), np.ones(8), rtol=1e-10)
    y = _np(second(torch.relu(first(x))))  # statistics of what the initialised first layer feeds it
    np.testing.assert_allclose(y.mean(0), np.zeros(3), atol=1e-10)
    np.testing.assert_allclose(y.std(0), np.full(3, 0.1), rtol=1e-10)


def test_shared_layer_is_initialised_by_its_first_call():
    torch.manual_seed(5)
    layer = WeightNormLinear(4, 4).double()
    x = torch.randn(32, 4, dtype=torch.float64)
    data_dependent_init(nn.Sequential(layer, layer), x)
    h = _np(layer(x))
    np.testing.assert_allclose(h.mean(0), np.zeros(4), atol=1e-10)
    np.testing.assert_allclose(h.std(0), np.ones(4), rtol=1e-10)


def test_init_reaches_minibatch_discrimination_after_the_layers_before_it():
    torch.manual_seed(6)
    net = nn.Sequential(WeightNormLinear(5, 6), MinibatchDiscrimination(6, 4, 3)).double()
    x = torch.randn(30, 5, dtype=torch.float64)
    out = data_dependent_init(net, x)
    assert all(bool(m.initialized) for m in net)
    torch.testing.assert_close(out[:, 6:].mean(0), torch.zeros(4, dtype=torch.float64))


class _UsesOneOfTwo(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = WeightNormLinear(3, 2), WeightNormLinear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def test_init_errors_and_warnings():
    with pytest.raises(ValueError, match="no data-dependent-init layer"):
        data_dependent_init(nn.Linear(2, 2), torch.randn(3, 2))
    net = _UsesOneOfTwo()
    with pytest.warns(UserWarning, match="1 layer"):
        data_dependent_init(net, torch.randn(4, 3))
    assert bool(net.used.initialized) and not bool(net.unused.initialized)
    net.unused(torch.randn(4, 2))  # init mode does not linger after the call
    assert not bool(net.unused.initialized)


def test_initialized_flag_and_parameters_round_trip():
    torch.manual_seed(7)
    layer = WeightNormConv2d(2, 3, 3, padding=1)
    x = torch.randn(4, 2, 5, 5)
    data_dependent_init(layer, x)
    state = layer.state_dict()
    assert set(state) == {"v", "g", "bias", "initialized"}
    fresh = WeightNormConv2d(2, 3, 3, padding=1)
    assert not bool(fresh.initialized)
    fresh.load_state_dict(state)
    assert bool(fresh.initialized)
    torch.testing.assert_close(fresh(x), layer(x))


def test_gradcheck_and_train_scale():
    torch.manual_seed(8)
    for layer, x in [
        (WeightNormLinear(3, 2), torch.randn(4, 3)),
        (WeightNormConv2d(2, 2, 2), torch.randn(2, 2, 3, 3)),
        (WeightNormConvTranspose2d(2, 2, 2, stride=2), torch.randn(2, 2, 2, 2)),
    ]:
        layer = layer.double()
        names = [n for n, _ in layer.named_parameters()]
        params = [p.detach().clone().requires_grad_(True) for _, p in layer.named_parameters()]
        x = x.double().requires_grad_(True)

        def f(x, *ps, layer=layer, names=names):
            return functional_call(layer, dict(zip(names, ps)), (x,))

        assert torch.autograd.gradcheck(f, (x, *params))
    frozen = WeightNormLinear(3, 2, train_scale=False)
    assert not frozen.g.requires_grad and frozen.v.requires_grad


def test_shape_errors():
    with pytest.raises(ValueError, match="WeightNormLinear"):
        WeightNormLinear(3, 2)(torch.randn(4, 5))
    with pytest.raises(ValueError, match="WeightNormConv2d"):
        WeightNormConv2d(3, 2, 3)(torch.randn(4, 2, 5, 5))
    with pytest.raises(ValueError, match="WeightNormConvTranspose2d"):
        WeightNormConvTranspose2d(3, 2, 3)(torch.randn(3, 5, 5))
    with pytest.raises(ValueError, match="init_scale"):
        WeightNormLinear(3, 2, init_scale=0.0)
