"""Mode coverage on layouts whose answer is known in closed form."""

import math

import numpy as np
import pytest
import torch

from improved_gan.metrics.mode_coverage import assign_modes, mode_statistics

CENTRES = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])  # K = 4
STD = 0.5  # high quality within 1.5


def test_balanced_exact_centres_cover_everything_with_zero_kl():
    points = CENTRES.repeat(3, 1)  # every mode 3 times, exactly at its centre
    out = mode_statistics(points, CENTRES, STD)
    assert out == {"modes": 4, "high_quality": 1.0, "mode_kl": 0.0}


def test_collapse_onto_one_mode_gives_log_k():
    points = CENTRES[2:3].repeat(7, 1) + torch.tensor([0.3, -0.4])  # distance 0.5 < 1.5
    out = mode_statistics(points, CENTRES, STD)
    assert out["modes"] == 1
    assert out["high_quality"] == 1.0
    assert out["mode_kl"] == pytest.approx(math.log(4), abs=1e-12)


def test_known_histogram_and_low_quality_points():
    # counts 2, 1, 1, 0 of high-quality samples; two far points (distance 5 from everything nearby)
    points = torch.tensor([[0.1, 0.0], [0.0, -0.1], [10.0, 1.0], [1.0, 10.0], [5.0, 0.0], [5.0, 5.0]])
    out = mode_statistics(points, CENTRES, STD)
    p = np.array([2, 1, 1, 0]) / 4
    kl = sum(pi * math.log(pi * 4) for pi in p if pi > 0)  # independent: sum p log(p / (1/K))
    assert out["modes"] == 3
    assert out["high_quality"] == pytest.approx(4 / 6, abs=1e-15)
    assert out["mode_kl"] == pytest.approx(kl, abs=1e-12)


def test_threshold_is_num_std_times_std_inclusive():
    points = torch.tensor([[1.5, 0.0], [1.5000001, 0.0]])
    out = mode_statistics(points.double(), CENTRES.double(), STD)
    assert out["high_quality"] == 0.5
    out = mode_statistics(points.double(), CENTRES.double(), STD, num_std=4.0)
    assert out["high_quality"] == 1.0


def test_min_count_and_no_high_quality_samples():
    points = torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]])
    assert mode_statistics(points, CENTRES, STD, min_count=2)["modes"] == 1
    far = mode_statistics(torch.tensor([[5.0, 5.0]]), CENTRES, STD)
    assert far["modes"] == 0 and far["high_quality"] == 0.0 and math.isnan(far["mode_kl"])


def test_assign_modes_matches_a_loop():
    rng = np.random.default_rng(0)
    pts = rng.normal(5, 4, size=(50, 2))
    k, d = assign_modes(pts, CENTRES.numpy())
    for i, x in enumerate(pts):
        dists = [math.dist(x, c) for c in CENTRES.tolist()]
        assert k[i].item() == int(np.argmin(dists))
        assert d[i].item() == pytest.approx(min(dists), rel=1e-12)


def test_shape_errors():
    with pytest.raises(ValueError, match="points"):
        mode_statistics(torch.zeros(3, 3), CENTRES, STD)
    with pytest.raises(ValueError, match="std"):
        mode_statistics(torch.zeros(3, 2), CENTRES, 0.0)
