"""KID, improved precision/recall and the bootstrap, against brute-force loops and closed forms."""

import itertools

import numpy as np
import pytest
import torch

from improved_gan.metrics import (
    bootstrap_interval,
    kernel_inception_distance,
    knn_radii,
    mmd2_unbiased,
    polynomial_kernel,
    precision_recall,
)


def _k(a, b):  # the cubic polynomial kernel, one pair at a time
    return (sum(x * y for x, y in zip(a, b)) / len(a) + 1.0) ** 3


def _mmd2_loops(x, y):
    m = len(x)
    xx = sum(_k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(_k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(_k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_polynomial_kernel_and_mmd_match_loops():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5
    kern = polynomial_kernel(x, y)
    for i, j in itertools.product(range(6), range(6)):
        assert kern[i, j] == pytest.approx(_k(x[i], y[j]), rel=1e-12)
    assert mmd2_unbiased(x, y) == pytest.approx(_mmd2_loops(x, y), rel=1e-10)
    quad = polynomial_kernel(x, y, degree=2, coef0=0.5)
    assert quad[1, 2] == pytest.approx((x[1] @ y[2] / 3 + 0.5) ** 2, rel=1e-12)


def test_mmd_of_constant_sets_is_the_kernel_distance():
    # every x equals a, every y equals b: the unbiased estimate is exactly k(a,a) + k(b,b) - 2 k(a,b)
    a, b = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    x, y = np.tile(a, (5, 1)), np.tile(b, (5, 1))
    assert mmd2_unbiased(x, y) == pytest.approx(_k(a, a) + _k(b, b) - 2 * _k(a, b), rel=1e-12)


def test_kid_subsets_follow_the_random_state_convention():
    # torch-fidelity's convention: one RandomState(seed); per subset, choice(N1, m) for set 1 then choice(N2, m)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(25, 4)) * 1.3
    state, values = np.random.RandomState(7), []
    for _ in range(5):
        ix = state.choice(30, 8, replace=False)
        iy = state.choice(25, 8, replace=False)
        values.append(_mmd2_loops(x[ix], y[iy]))
    mean, std = kernel_inception_distance(torch.from_numpy(x), y, subsets=5, subset_size=8, seed=7)
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)  # population std (ddof 0)


def test_kid_defaults_and_errors():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1000, 3))
    # the defaults: 100 subsets of 1000 rows; with N = 1000 each subset is the whole set, so all agree
    mean, std = kernel_inception_distance(x, x[::-1].copy())
    assert mean == pytest.approx(mmd2_unbiased(x, x), rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="subset_size 1000"):
        kernel_inception_distance(x[:999], x)
    with pytest.raises(ValueError, match="one d"):
        kernel_inception_distance(x, x[:, :2])


def _radii_loops(p, k):
    out = []
    for i in range(len(p)):
        d = sorted(np.linalg.norm(p[i] - p[j]) for j in range(len(p)) if j != i)
        out.append(d[k - 1])
    return np.array(out)


def _coverage_loops(points, centres, radii):
    return np.mean([any(np.linalg.norm(q - c) <= r + 1e-12 for c, r in zip(centres, radii)) for q in points])


def test_precision_recall_match_loops():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(35, 3)) * 0.6 + 0.7
    np.testing.assert_allclose(knn_radii(real, chunk=7), _radii_loops(real, 3), rtol=1e-10)
    p, r = precision_recall(real, fake, chunk=9)
    assert p == pytest.approx(_coverage_loops(fake, real, _radii_loops(real, 3)))
    assert r == pytest.approx(_coverage_loops(real, fake, _radii_loops(fake, 3)))
    assert precision_recall(fake, real) == (r, p)  # swapping the roles swaps the numbers


def test_precision_recall_closed_form_on_a_line():
    # real 0..4 (3rd-neighbour radii 3, 2, 2, 2, 3), fake 5..8 (radii 3, 2, 2, 3); a point on a ball's boundary
    # counts as inside: fake 5, 6, 7 lie within 3 of real 4 -> precision 3/4; real 4, 3, 2 within 3 of fake 5
    real = np.arange(5.0)[:, None]
    fake = np.arange(5.0, 9.0)[:, None]
    np.testing.assert_allclose(knn_radii(real), [3, 2, 2, 2, 3])
    assert precision_recall(real, fake) == (0.75, 0.6)
    assert precision_recall(real, fake + 100) == (0.0, 0.0)
    with pytest.raises(ValueError, match="N > k"):
        precision_recall(real, fake[:3])


def test_bootstrap_interval_of_the_mean_matches_an_independent_resampling():
    x = np.arange(20.0)
    lo_hi = bootstrap_interval(np.mean, x, n=50, seed=4, method="resample")
    rng = np.random.default_rng(4)
    means = [x[rng.integers(0, 20, size=20)].mean() for _ in range(50)]
    assert lo_hi == [tuple(np.quantile(means, [0.025, 0.975]))]
    # two arrays, two values: each array resampled with its own indices, in argument order
    y = np.arange(10.0) * 2
    pair = bootstrap_interval(
        lambda a, b: (a.mean(), b.max()), x, y, n=20, confidence=0.5, seed=1, method="resample"
    )
    rng, vals = np.random.default_rng(1), []
    for _ in range(20):
        a = x[rng.integers(0, 20, size=20)]
        b = y[rng.integers(0, 10, size=10)]
        vals.append((a.mean(), b.max()))
    expected = np.quantile(np.array(vals), [0.25, 0.75], axis=0)
    assert pair == [tuple(expected[:, 0]), tuple(expected[:, 1])]
    with pytest.raises(ValueError, match="n must be"):
        bootstrap_interval(np.mean, x, n=1)
    with pytest.raises(ValueError, match="method must be"):
        bootstrap_interval(np.mean, x, method="jackknife")


def test_half_sampling_interval_matches_an_independent_computation():
    x, y = np.arange(21.0) ** 1.5, np.arange(10.0)
    got = bootstrap_interval(lambda a, b: (a.mean(), b[0] + a[0]), x, y, n=30, confidence=0.8, seed=5)
    rng, vals = np.random.default_rng(5), []
    for _ in range(30):
        a = x[np.sort(rng.permutation(21)[:10])]  # half of 21 rows, without replacement, in their order
        b = y[np.sort(rng.permutation(10)[:5])]
        vals.append((a.mean(), b[0] + a[0]))
    vals = np.array(vals)
    full = np.array([x.mean(), y[0] + x[0]])
    expected = full + np.quantile(vals - vals.mean(0), [0.1, 0.9], axis=0)
    assert got == [tuple(expected[:, 0]), tuple(expected[:, 1])]
    # a caller that has the full-data value already passes it instead of having it computed again
    given = bootstrap_interval(
        lambda a, b: (a.mean(), b[0] + a[0]), x, y, n=30, confidence=0.8, seed=5, estimate=tuple(full)
    )
    assert given == got
    with pytest.raises(ValueError, match="at least 4 rows"):
        bootstrap_interval(np.mean, np.arange(3.0))


def test_half_sampling_interval_of_precision_is_unbiased_where_resampling_is_not():
    # Gaussian samples against a slightly wider Gaussian: the k-NN precision's spread over independent draws
    # against the interval from one draw. A resample with replacement repeats rows, which become each other's
    # nearest neighbours: the k-NN balls shrink and the precision falls well below the value.
    rng = np.random.default_rng(0)
    n, d = 600, 16

    def draw():
        return rng.standard_normal((n, d)) * 1.1, rng.standard_normal((n, d))

    def prec(fake, real):
        return precision_recall(real, fake, k=3)[0]

    spread = np.std([prec(*draw()) for _ in range(30)])
    fake, real = draw()
    value = prec(fake, real)
    lo, hi = bootstrap_interval(prec, fake, real, n=40, seed=1)[0]
    assert lo < value < hi
    assert 0.7 < (hi - lo) / (2 * 1.96 * spread) < 2.0  # about 1 here; up to 1.8x wider in 6 dimensions
    rlo, rhi = bootstrap_interval(prec, fake, real, n=40, seed=1, method="resample")[0]
    assert rhi < value - 2 * spread
