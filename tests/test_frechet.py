"""Tests of the Frechet distance against closed forms, and of the Gaussian statistics."""

import numpy as np
import pytest
import torch

import improved_gan.metrics.frechet as frechet_module
from improved_gan.metrics import frechet_distance, gaussian_statistics


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert isinstance(got, float)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_commuting_covariances_closed_form():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))  # shared eigenvectors: the matrices commute
    a, b = rng.uniform(0.1, 2.0, size=5), rng.uniform(0.1, 2.0, size=5)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-9)


def test_identical_gives_zero_and_distance_is_symmetric():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = _random_spd(rng, 8), _random_spd(rng, 8)
    np.testing.assert_allclose(frechet_distance(mu1, s1, mu1, s1), 0.0, atol=1e-10)
    np.testing.assert_allclose(
        frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1), rtol=1e-10
    )


def test_one_dimensional_gaussians_and_torch_inputs():
    # d^2 = (m1 - m2)^2 + (sd1 - sd2)^2 in one dimension
    got = frechet_distance(
        torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-1.0]), torch.tensor([[9.0]])
    )
    np.testing.assert_allclose(got, 4.0 + 1.0, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_singular_covariances_stay_finite():
    v = np.array([[1.0, 2.0, 0.0, 0.0]])
    s = v.T @ v  # rank 1
    got = frechet_distance(np.zeros(4), s, np.zeros(4), s)
    np.testing.assert_allclose(got, 0.0, atol=1e-5)


def test_non_finite_square_root_is_retried_with_eps_offset(monkeypatch):
    real_sqrtm, calls = frechet_module.linalg.sqrtm, []

    def flaky_sqrtm(a):
        calls.append(a)
        return np.full_like(a, np.inf) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(frechet_module.linalg, "sqrtm", flaky_sqrtm)
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    got = frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=1e-3)
    np.testing.assert_allclose(calls[1], (s1 + 1e-3 * np.eye(2)) @ (s2 + 1e-3 * np.eye(2)))
    expected = np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.diag(calls[1])))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize(("imag", "ok"), [(1e-8, True), (1e-2, False)])
def test_complex_square_root_small_imaginary_part_dropped_large_rejected(monkeypatch, imag, ok):
    monkeypatch.setattr(frechet_module.linalg, "sqrtm", lambda a: np.sqrt(a) + 1j * imag * np.eye(len(a)))
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    if ok:
        np.testing.assert_allclose(frechet_distance(np.zeros(2), s1, np.zeros(2), s2), 4.0 + 1.0, rtol=1e-12)
    else:
        with pytest.raises(ValueError, match="complex"):
            frechet_distance(np.zeros(2), s1, np.zeros(2), s2)


def test_gaussian_statistics_unbiased():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 4)) * [1.0, 2.0, 0.5, 3.0] + [0.0, 1.0, -1.0, 2.0]
    mu, sigma = gaussian_statistics(torch.from_numpy(x).float())
    x32 = torch.from_numpy(x).float().double().numpy()
    centred = x32 - x32.mean(axis=0)
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)
    np.testing.assert_allclose(mu, x32.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49, rtol=1e-12)
    mu1, sigma1 = gaussian_statistics(x[:, :1])
    assert sigma1.shape == (1, 1)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros(3), np.eye(3), np.zeros(2), np.eye(2)), "means"),
        ((np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)), "covariances"),
        ((np.zeros((3, 1)), np.eye(3), np.zeros((3, 1)), np.eye(3)), "means"),
        ((np.full(3, np.inf), np.eye(3), np.zeros(3), np.eye(3)), "non-finite"),
    ],
)
def test_frechet_invalid_input(args, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(*args)


def test_gaussian_statistics_invalid_input():
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_statistics(np.zeros(5))


def test_few_samples_warn_about_samples_versus_dimensions():
    import warnings

    from scipy.linalg import LinAlgWarning

    from improved_gan.metrics import SingularCovarianceWarning

    rng = np.random.default_rng(5)
    with pytest.warns(SingularCovarianceWarning, match="30 samples of 64 features"):
        gaussian_statistics(rng.normal(size=(30, 64)))
    x = np.maximum(rng.normal(size=(100, 16)), 0)
    x[:, :5] = 0  # constant features: singular covariances whatever N
    y = np.maximum(rng.normal(size=(100, 16)), 0)
    y[:, :5] = 0
    (m1, s1), (m2, s2) = gaussian_statistics(x), gaussian_statistics(y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = frechet_distance(m1, s1, m2, s2)
    kinds = [w.category for w in caught]
    assert SingularCovarianceWarning in kinds and LinAlgWarning not in kinds
    assert any("more samples than the 16 feature dimensions" in str(w.message) for w in caught)
    # the value is the same formula on the 11 informative features (the zero block adds nothing)
    s1r, s2r = s1[5:, 5:], s2[5:, 5:]
    expected = ((m1 - m2) ** 2).sum() + np.trace(s1r + s2r - 2 * linalg_sqrtm(s1r @ s2r).real)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def linalg_sqrtm(a):
    from scipy import linalg

    return linalg.sqrtm(a)
