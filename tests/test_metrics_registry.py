"""The metric registry: defaults, errors, and round trips against independent computations."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import linalg

from improved_gan.errors import UserError
from improved_gan.metrics import features
from improved_gan.metrics import inception as inception_mod
from improved_gan.metrics.registry import (
    available_metrics,
    compute_metrics,
    default_metrics,
    default_num_samples,
    real_data_ceiling,
    report_keys,
)
from metric_helpers import fresh_caches, save_tiny_classifier  # noqa: F401 (an autouse fixture)


def test_defaults_and_names():
    grey = ("classifier_score", "classifier_fid", "classifier_kid", "classifier_pr")
    assert default_metrics("fashion-mnist") == grey
    assert default_metrics("fmnist") == default_metrics("mnist") == grey
    assert default_metrics("cifar10") == default_metrics("svhn") == ("inception_score",)
    toy = ("high_quality", "modes", "mode_kl", "pr", "kid")
    assert default_metrics("ring8") == default_metrics("grid25") == toy
    assert set(available_metrics()) == {*grey, "inception_score", *toy, "fid"}
    assert report_keys("ring8") == ("high_quality", "modes", "mode_kl", "precision", "recall", "kid")
    assert report_keys("fmnist")[-3:] == ("classifier_kid", "classifier_precision", "classifier_recall")
    assert default_num_samples("cifar10") == 50_000 and default_num_samples("fashion-mnist") == 10_000
    with pytest.raises(UserError, match="unknown data set .imagenet."):
        default_metrics("imagenet")


def test_errors_for_bad_requests():
    points = torch.zeros(10, 2)
    with pytest.raises(UserError, match="unknown metric 'fd'"):
        compute_metrics(["fd"], points, dataset="ring8")
    with pytest.raises(UserError, match="does not apply to data set ring8"):
        compute_metrics(["inception_score"], points, dataset="ring8")
    with pytest.raises(UserError, match="does not apply to data set cifar10"):
        compute_metrics(["classifier_score"], torch.rand(10, 3, 32, 32), dataset="cifar10")
    with pytest.raises(TypeError, match="unknown metric options"):
        compute_metrics(None, points, dataset="ring8", splits_=3)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        compute_metrics(None, torch.zeros(10, 3), dataset="ring8")
    with pytest.raises(ValueError, match=r"\(N, H, W\), \(N, C, H, W\) or \(N, H, W, C\)"):
        compute_metrics(None, torch.zeros(10, 784), dataset="mnist")
    with pytest.raises(ValueError, match="ambiguous"):
        compute_metrics(None, torch.full((10, 1, 28, 28), 1.5), dataset="mnist")


def _ring8_centres() -> np.ndarray:
    angles = np.arange(8) * np.pi / 4
    return 2 * np.stack([np.cos(angles), np.sin(angles)], 1)


def test_toy_round_trip():
    c = _ring8_centres()
    points = np.concatenate([c[[0, 0, 0, 3, 5]], [[0.0, 0.0]]])  # three modes; the origin is far from all
    out = compute_metrics(None, torch.tensor(points, dtype=torch.float32), dataset="ring8")
    p = np.array([3, 1, 1]) / 5
    assert list(out) == ["high_quality", "modes", "mode_kl", "precision", "recall", "kid", "kid_std"]
    assert out["modes"] == 3
    assert out["high_quality"] == pytest.approx(5 / 6, abs=1e-12)
    assert out["mode_kl"] == pytest.approx(float((p * np.log(p * 8)).sum()), abs=1e-9)
    x = torch.tensor(points)
    assert compute_metrics(["modes"], x, dataset="ring8", min_count=2) == {"modes": 1}
    assert compute_metrics(["high_quality"], x, dataset="ring8", num_std=1000) == {"high_quality": 1.0}


def test_toy_real_data_ceiling():
    out = real_data_ceiling("grid25", ["modes", "high_quality", "mode_kl"], num_samples=20_000, seed=0)
    assert out["modes"] == 25
    assert out["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.005)  # P(|N(0, I_2)| <= 3)
    assert out["mode_kl"] == pytest.approx(24 / (2 * 20_000), abs=0.002)  # E KL of a multinomial ~ (K-1)/2N


@pytest.fixture
def tiny_classifier(tmp_path):
    return save_tiny_classifier(tmp_path / "c.pt")


def test_classifier_round_trip(tiny_classifier):
    path, model, ref = tiny_classifier
    images = torch.rand(30, 1, 28, 28)
    names = ["classifier_score", "classifier_fid"]
    out = compute_metrics(names, images, dataset="fmnist", classifier_path=path, splits=3, batch_size=7)
    assert list(out) == ["classifier_score", "classifier_score_std", "classifier_fid"]
    with torch.no_grad():
        logits, feats = model.eval().forward_with_features(torch.round(images * 255) / 255)
    p = logits.double().softmax(1).numpy()
    scores = [np.exp((q * (np.log(q) - np.log(q.mean(0)))).sum(1).mean()) for q in np.split(p, 3)]
    assert out["classifier_score"] == pytest.approx(np.mean(scores), rel=1e-9)
    assert out["classifier_score_std"] == pytest.approx(np.std(scores), rel=1e-6, abs=1e-12)
    f = feats.double().numpy()
    s1, s2 = np.cov(f, rowvar=False), np.cov(ref, rowvar=False)
    fd = ((f.mean(0) - ref.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert out["classifier_fid"] == pytest.approx(fd, rel=1e-5)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units of a random network
def test_classifier_ceiling_uses_test_images_for_the_score(tiny_classifier, monkeypatch):
    import improved_gan.data

    path = tiny_classifier[0]
    g = torch.Generator().manual_seed(0)
    data = SimpleNamespace(
        train_images=torch.randint(0, 256, (50, 1, 28, 28), dtype=torch.uint8, generator=g),
        test_images=torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=g),
    )
    monkeypatch.setattr(improved_gan.data, "load_dataset", lambda name, data_dir=None: data)
    out = real_data_ceiling("fashion-mnist", num_samples=20, classifier_path=path, splits=2)
    direct = compute_metrics(
        ["classifier_score"],
        data.test_images.float() / 255,
        dataset="fashion-mnist",
        classifier_path=path,
        splits=2,
    )
    assert out["classifier_score"] == direct["classifier_score"]
    subset = torch.randperm(50, generator=torch.Generator().manual_seed(0))[:20]
    direct = compute_metrics(
        ["classifier_fid"],
        data.train_images[subset].float() / 255,
        dataset="fashion-mnist",
        classifier_path=path,
    )
    assert out["classifier_fid"] == direct["classifier_fid"]


def test_inception_needs_weights(tmp_path, monkeypatch):
    monkeypatch.delenv(inception_mod.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(inception_mod, "weights_search_path", lambda: [tmp_path / inception_mod.WEIGHTS_NAME])
    with pytest.raises(UserError, match=inception_mod.ENV_WEIGHTS):
        compute_metrics(None, torch.rand(10, 3, 32, 32), dataset="cifar10")


def test_inception_plumbing_with_a_fake_scorer(tmp_path, monkeypatch):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    calls = []

    class FakeScorer:
        def __init__(self, path, *, device, backend):
            calls.append((path, device, backend))

    def fake_outputs(images):  # uniform probabilities: a score of exactly 1 in every split
        n = images.shape[0]
        probs = np.full((n, 2), 0.5)
        return np.zeros((n, 3)), probs

    monkeypatch.setattr(inception_mod, "InceptionScorer", FakeScorer)
    monkeypatch.setattr(features, "inception_outputs", lambda scorer, images, **kw: fake_outputs(images))
    images = torch.rand(12, 3, 32, 32)
    for _ in range(2):  # the network is built once and reused
        out = compute_metrics(None, images, dataset="svhn", inception_weights=weights, splits=4)
        assert out == {"inception_score": pytest.approx(1.0), "inception_score_std": pytest.approx(0.0)}
    assert calls == [(str(weights), "cpu", "auto")]


def test_toy_kid_and_precision_recall_compare_with_mixture_points():
    from improved_gan.data import load_toy
    from improved_gan.metrics.registry import REFERENCE_SEED

    g = torch.Generator().manual_seed(5)
    points = load_toy("ring8").sample(300, g) * 1.2  # a ring too wide: precision drops below 1
    out = compute_metrics(["pr", "kid"], points, dataset="ring8")
    ref = load_toy("ring8").sample(300, torch.Generator().manual_seed(REFERENCE_SEED)).double().numpy()
    x = points.double().numpy()

    def radii(a):
        d = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1)) + np.diag(np.full(len(a), np.inf))
        return np.sort(d, axis=1)[:, 2]

    def inside(q, c, r):
        return (np.sqrt(((q[:, None] - c[None]) ** 2).sum(-1)) <= r[None] * (1 + 1e-9)).any(1).mean()

    assert out["precision"] == pytest.approx(inside(x, ref, radii(ref)))
    assert out["recall"] == pytest.approx(inside(ref, x, radii(x)))
    assert out["precision"] < 0.5
    state, vals = np.random.RandomState(2020), []
    for _ in range(100):  # subsets of min(1000, N) = 300 rows: each a permutation, so all equal
        a, b = x[state.choice(300, 300, replace=False)], ref[state.choice(300, 300, replace=False)]
        kxx, kyy, kxy = ((u @ v.T / 2 + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
        m = 300
        vals.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    assert out["kid"] == pytest.approx(np.mean(vals), rel=1e-9)


def test_classifier_kid_and_pr_use_the_real_test_set(tiny_classifier, monkeypatch):
    import improved_gan.data

    path, model, _ = tiny_classifier
    g = torch.Generator().manual_seed(1)
    test = torch.randint(0, 256, (25, 1, 28, 28), dtype=torch.uint8, generator=g)
    monkeypatch.setattr(
        improved_gan.data, "load_dataset", lambda name, data_dir=None: SimpleNamespace(test_images=test)
    )
    images = torch.rand(20, 1, 28, 28, generator=g)
    out = compute_metrics(["classifier_pr"], images, dataset="fmnist", classifier_path=path, data_dir="x")
    with torch.no_grad():
        f = model.eval().forward_with_features(torch.round(images * 255) / 255)[1].double().numpy()
        r = model.forward_with_features(test.float() / 255)[1].double().numpy()
    from improved_gan.metrics import precision_recall

    assert (out["classifier_precision"], out["classifier_recall"]) == precision_recall(r, f)
