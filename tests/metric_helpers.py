"""Shared pieces of the metric tests: a tiny random classifier file, and per-test metric caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from improved_gan.metrics import features
from improved_gan.metrics.classifier import SmallConvClassifier, TrainedClassifier, save_classifier


def save_tiny_classifier(path):
    """A random width-4, 5-feature Fashion-MNIST classifier saved at ``path`` with the statistics of 40 random
    reference rows as its test statistics -> (path, model in eval mode, the reference rows (40, 5))."""
    torch.manual_seed(0)
    model = SmallConvClassifier(1, 10, width=4, feature_dim=5).eval()
    ref = torch.randn(40, 5, dtype=torch.float64)
    trained = TrainedClassifier(
        model,
        dataset="fashion-mnist",
        test_mu=ref.mean(0),
        test_sigma=torch.from_numpy(np.cov(ref.numpy().T)),
    )
    return save_classifier(trained, path), model, ref.numpy()


@pytest.fixture(autouse=True)
def fresh_caches(tmp_path, monkeypatch):
    """Each test gets its own on-disk reference cache and rebuilds the networks."""
    monkeypatch.setenv("IMPROVED_GAN_CACHE", str(tmp_path / "cache"))
    features.clear_cache()
    yield
    features.clear_cache()
