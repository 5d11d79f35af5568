"""Tests of the Inception Score formula against a short numpy oracle and closed-form cases."""

import numpy as np
import pytest
import torch

from improved_gan.metrics import inception_score


def _oracle(p, splits):
    """The reference convention, written out: in-order splits, exp(mean KL) per split, population std."""
    n, scores = len(p), []
    for k in range(splits):
        part = p[k * n // splits : (k + 1) * n // splits]
        kl = np.sum(part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True))), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return np.mean(scores), np.std(scores)


@pytest.mark.parametrize(("n", "splits"), [(200, 10), (103, 10), (57, 4), (10, 10), (31, 1)])
def test_matches_numpy_oracle_including_uneven_split_boundaries(n, splits):
    rng = np.random.default_rng(n)
    # sharp, uneven predictions so each split's score depends on which rows it holds
    p = rng.dirichlet(np.full(7, 0.3), size=n) + 1e-12
    p /= p.sum(axis=1, keepdims=True)
    mean, std = inception_score(p, splits=splits)
    assert isinstance(mean, float) and isinstance(std, float)
    np.testing.assert_allclose((mean, std), _oracle(p, splits), rtol=1e-12, atol=1e-12)


def test_torch_float32_input_is_computed_in_float64():
    rng = np.random.default_rng(1)
    p32 = torch.softmax(torch.from_numpy(rng.normal(size=(50, 5)) * 3).float(), dim=1)
    got = inception_score(p32, splits=5)
    np.testing.assert_allclose(got, _oracle(p32.double().numpy(), 5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [4, 10, 1008])
def test_uniform_predictions_score_exactly_one(k):
    assert inception_score(np.full((40, k), 1.0 / k), splits=10) == (1.0, 0.0)


def test_balanced_one_hot_predictions_score_k():
    k, splits = 5, 4
    p = np.eye(k)[np.arange(splits * k * 3) % k]  # every split holds each class 3 times; zeros: 0 log 0 = 0
    mean, std = inception_score(p, splits=splits)
    np.testing.assert_allclose((mean, std), (k, 0.0), rtol=1e-12, atol=1e-12)


def test_unbalanced_one_hot_split_scores():
    # split 0 holds classes {0, 1} equally (score 2), split 1 holds class 2 only (score 1)
    p = np.eye(3)[[0, 1, 0, 1, 2, 2, 2, 2]]
    mean, std = inception_score(p, splits=2)
    np.testing.assert_allclose((mean, std), (1.5, 0.5), rtol=1e-12)


@pytest.mark.parametrize(
    ("probs", "splits", "match"),
    [
        (np.full(10, 0.1), 1, "shape"),
        (np.full((5, 2), 0.5), 10, "at least"),
        (np.full((5, 2), 0.5), 0, "splits"),
        (np.full((5, 2), 0.6), 1, "sum to 1"),
        (np.array([[1.5, -0.5]] * 4), 1, "non-negative"),
        (np.array([[np.nan, 1.0]] * 4), 1, "finite"),
    ],
)
def test_invalid_input(probs, splits, match):
    with pytest.raises(ValueError, match=match):
        inception_score(probs, splits=splits)
