"""Tests of the min_x max_y xy example (SPEC §0) against closed forms and independent loops."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from improved_gan.errors import ConfigError
from improved_gan.toy_xy import (
    alternating_gd,
    alternating_invariant,
    historical_averaging_gd,
    run_xy_example,
    simultaneous_gd,
)


@pytest.mark.parametrize("lr, x0, y0", [(0.1, 1.0, 1.0), (0.05, -2.0, 0.5), (0.3, 0.0, 1.0)])
def test_simultaneous_radius_follows_closed_form_every_step(lr, x0, y0):
    path = simultaneous_gd(x0, y0, lr=lr, steps=100)
    assert path.shape == (101, 2)
    t = np.arange(101)
    expected = math.hypot(x0, y0) * (1 + lr**2) ** (t / 2)
    np.testing.assert_allclose(np.hypot(path[:, 0], path[:, 1]), expected, rtol=1e-9, atol=0)


def test_simultaneous_is_scaled_rotation():
    # [[1, -h], [h, 1]] = sqrt(1 + h^2) * rotation by atan(h): closed form of every iterate.
    lr, p0 = 0.1, np.array([1.0, 1.0])
    path = simultaneous_gd(*p0, lr=lr, steps=100)
    for t in (1, 17, 100):
        a = t * math.atan(lr)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        np.testing.assert_allclose(path[t], (1 + lr**2) ** (t / 2) * rot @ p0, rtol=1e-9, atol=1e-12)


def test_alternating_equals_matrix_power_and_conserves_invariant():
    lr, p0 = 0.1, np.array([1.0, 1.0])
    path = alternating_gd(*p0, lr=lr, steps=100)
    a = np.array([[1.0, -lr], [lr, 1.0 - lr**2]])  # x' = x - h y ; y' = h x + (1 - h^2) y
    np.testing.assert_allclose(path[100], np.linalg.matrix_power(a, 100) @ p0, rtol=1e-9, atol=1e-12)
    q = path[:, 0] ** 2 + path[:, 1] ** 2 - lr * path[:, 0] * path[:, 1]
    np.testing.assert_allclose(q, np.full(101, 2.0 - lr), rtol=0, atol=1e-9)
    np.testing.assert_allclose(alternating_invariant(path, lr=lr), q, rtol=0, atol=0)


@settings(max_examples=30, deadline=None)
@given(
    lr=st.floats(0.01, 1.9),
    x0=st.floats(-5, 5),
    y0=st.floats(-5, 5),
)
def test_alternating_stays_on_its_ellipse(lr, x0, y0):
    path = alternating_gd(x0, y0, lr=lr, steps=100)
    q0 = x0 * x0 + y0 * y0 - lr * x0 * y0
    q = alternating_invariant(path, lr=lr)
    np.testing.assert_allclose(q, np.full(101, q0), rtol=0, atol=1e-9 * max(1.0, q0))
    # Q >= (1 - lr/2) r^2 (smallest eigenvalue of [[1, -lr/2], [-lr/2, 1]]): bounded orbit.
    r2 = (path**2).sum(axis=1)
    assert np.all(r2 <= q0 / (1 - lr / 2) * (1 + 1e-9) + 1e-12)


def test_historical_averaging_matches_explicit_history_loop():
    lr, w, steps = 0.1, 0.2, 60
    x, y, hist = 1.0, 1.0, []
    expected = [(x, y)]
    for _ in range(steps):
        hist.append((x, y))
        mx, my = np.mean(hist, axis=0)
        # player 1: d/dx [xy + w (x - mx)^2]; player 2: d/dy [-xy + w (y - my)^2]
        x, y = x - lr * (y + 2 * w * (x - mx)), y - lr * (-x + 2 * w * (y - my))
        expected.append((x, y))
    path = historical_averaging_gd(1.0, 1.0, lr=lr, steps=steps, weight=w)
    np.testing.assert_allclose(path, np.array(expected), rtol=1e-12, atol=1e-14)


def test_historical_averaging_weight_zero_is_simultaneous():
    a = historical_averaging_gd(1.0, 1.0, lr=0.1, steps=50, weight=0.0)
    b = simultaneous_gd(1.0, 1.0, lr=0.1, steps=50)
    np.testing.assert_array_equal(a, b)


def test_run_xy_example_writes_files_and_spirals_in_with_averaging(tmp_path):
    summary = run_xy_example(tmp_path / "xy")
    png, js = tmp_path / "xy" / "xy_trajectories.png", tmp_path / "xy" / "xy.json"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 200
    record = json.loads(js.read_text())
    assert {k: v for k, v in record.items() if k != "trajectories"} == summary
    assert np.asarray(record["trajectories"]["simultaneous"]).shape == (101, 2)
    r0 = math.sqrt(2.0)
    assert summary["start_radius"] == r0
    assert summary["final_radius"]["historical_averaging"] < r0  # default weight converges
    assert summary["final_radius"]["simultaneous"] == pytest.approx(r0 * 1.01**50, rel=1e-9)
    assert summary["simultaneous_max_rel_error_vs_closed_form"] < 1e-9
    assert summary["alternating_invariant_max_abs_drift"] < 1e-9


@pytest.mark.parametrize(
    "kw",
    [{"lr": 0.0}, {"lr": float("nan")}, {"steps": 0}, {"steps": 2.5}, {"ha_weight": -1.0}, {"x0": math.inf}],
)
def test_bad_settings_raise_config_error(tmp_path, kw):
    with pytest.raises(ConfigError, match="toy xy"):
        run_xy_example(tmp_path, **kw)
