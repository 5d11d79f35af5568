"""Tests of improved_gan.regularizers.HistoricalAveraging (section 3.3) against stored snapshots."""

import io

import numpy as np
import pytest
import torch
from torch import nn

from improved_gan.regularizers import HistoricalAveraging


def _set_params(module, rng, offset=0.0, scale=1.0):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(offset + scale * rng.normal(size=tuple(p.shape))))


def _snapshot(module):
    return [p.detach().double().numpy().copy() for p in module.parameters()]


def test_running_mean_is_exact_over_thousands_of_updates_with_large_offset():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = nn.Linear(4, 3)  # float32 parameters
    ha = HistoricalAveraging(model)
    sums = [np.zeros(p.shape) for p in model.parameters()]
    snapshots = []
    for _ in range(5000):
        _set_params(model, rng, offset=1e4, scale=1e-2)  # values 1e4 + small noise
        snapshots.append(_snapshot(model))
        ha.update()
    assert ha.num_snapshots == 5000 and int(ha.count) == 5000
    for i, mean in enumerate(ha._means()):
        expected = np.mean(np.stack([s[i] for s in snapshots]), axis=0)  # float64 mean of the snapshots
        assert mean.dtype == torch.float64
        np.testing.assert_allclose(mean.numpy(), expected, rtol=0, atol=1e-9)
        sums[i] = expected
    # the penalty uses that mean: sum ||theta - mean||^2 (theta in float32 here)
    _set_params(model, rng, offset=1e4, scale=1e-2)
    expected_pen = sum(
        np.sum((p.detach().double().numpy() - m) ** 2) for p, m in zip(model.parameters(), sums)
    )
    torch.testing.assert_close(
        ha.penalty().double(), torch.tensor(expected_pen, dtype=torch.float64), rtol=1e-5, atol=0
    )


def test_penalty_value_and_gradient_closed_form():
    rng = np.random.default_rng(1)
    a = nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    b = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    ha = HistoricalAveraging([a, b])
    history = []
    for _ in range(7):
        with torch.no_grad():
            a.copy_(torch.from_numpy(rng.normal(size=(3, 2))))
            b.copy_(torch.from_numpy(rng.normal(size=5)))
        history.append((a.detach().numpy().copy(), b.detach().numpy().copy()))
        ha.update()
    with torch.no_grad():
        a.add_(1.0)
        b.sub_(2.0)
    mean_a = np.mean([h[0] for h in history], axis=0)
    mean_b = np.mean([h[1] for h in history], axis=0)
    pen = ha.penalty()
    expected = np.sum((a.detach().numpy() - mean_a) ** 2) + np.sum((b.detach().numpy() - mean_b) ** 2)
    torch.testing.assert_close(pen, torch.tensor(expected, dtype=torch.float64))
    pen.backward()
    torch.testing.assert_close(a.grad, torch.from_numpy(2.0 * (a.detach().numpy() - mean_a)))
    torch.testing.assert_close(b.grad, torch.from_numpy(2.0 * (b.detach().numpy() - mean_b)))


def test_penalty_is_exactly_zero_before_first_update():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    ha = HistoricalAveraging(model)
    pen = ha.penalty()
    assert pen.shape == () and pen.dtype == torch.float32 and pen.item() == 0.0
    pen.backward()  # differentiable, with a zero gradient
    for p in model.parameters():
        assert torch.equal(p.grad, torch.zeros_like(p))


def test_penalty_is_zero_right_after_one_update():
    model = nn.Linear(3, 2)
    ha = HistoricalAveraging(model)
    ha.update()
    assert ha.penalty().item() == 0.0


def test_state_dict_round_trip_and_tracked_params_not_included():
    rng = np.random.default_rng(2)
    model = nn.Linear(3, 2)
    ha = HistoricalAveraging(model)
    for _ in range(4):
        _set_params(model, rng)
        ha.update()
    state = ha.state_dict()
    assert sorted(state) == ["count", "mean_0", "mean_1"]
    assert list(ha.parameters()) == []
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)

    twin = nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    ha_twin = HistoricalAveraging(twin)
    ha_twin.load_state_dict(loaded)
    assert ha_twin.num_snapshots == 4
    for m1, m2 in zip(ha._means(), ha_twin._means()):
        assert torch.equal(m1, m2)
    # both continue identically
    _set_params(model, rng)
    twin.load_state_dict(model.state_dict())
    ha.update()
    ha_twin.update()
    assert torch.equal(ha.penalty(), ha_twin.penalty())
    for m1, m2 in zip(ha._means(), ha_twin._means()):
        assert torch.equal(m1, m2)


def test_iterable_of_parameters_deduplicated_and_validated():
    p = nn.Parameter(torch.ones(2))
    ha = HistoricalAveraging([p, p])
    assert sorted(ha.state_dict()) == ["count", "mean_0"]
    with pytest.raises(ValueError, match="no parameters"):
        HistoricalAveraging([])
    with pytest.raises(ValueError, match="floating-point"):
        HistoricalAveraging([torch.ones(2, dtype=torch.int64)])


def test_dtype_conversion_keeps_float64_means():
    model = nn.Linear(2, 2)
    ha = HistoricalAveraging(model)
    ha.update()
    ha.to(torch.float32)
    ha.half()
    assert all(m.dtype == torch.float64 for m in ha._means())
    assert ha.count.dtype == torch.int64
    torch.testing.assert_close(ha.mean_0, model.weight.detach().double())
