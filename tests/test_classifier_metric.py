"""The classifier-score adapter on tiny random classifiers and synthetic data (no trained file needed)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import linalg

from improved_gan.errors import UserError
from improved_gan.metrics.classifier import (
    SmallConvClassifier,
    TrainedClassifier,
    classifier_path,
    fit_classifier,
    load_classifier,
    quantize,
    save_classifier,
    train_classifier,
)


def _numpy_score(p: np.ndarray, splits: int) -> tuple[float, float]:
    scores = []
    for part in np.array_split(p, splits):  # equal splits here, so the same as the k*N//splits rule
        kl = (part * (np.log(part) - np.log(part.mean(0, keepdims=True)))).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _numpy_fd(a: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions on a busy 2-core machine run faster on one thread than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = SmallConvClassifier(1, 10, width=4, feature_dim=6)
    feats = torch.randn(50, 6, dtype=torch.float64)
    mu, sigma = feats.mean(0), torch.from_numpy(np.cov(feats.numpy(), rowvar=False))
    return TrainedClassifier(model, dataset="fashion-mnist", test_mu=mu, test_sigma=sigma, metadata={"a": 1})


def test_outputs_shapes_quantization_and_batch_independence(tiny):
    x = torch.rand(7, 1, 28, 28)
    probs, feats = tiny.outputs(x, batch_size=3)
    assert probs.shape == (7, 10) and feats.shape == (7, 6) and probs.dtype == torch.float64
    torch.testing.assert_close(probs.sum(1), torch.ones(7, dtype=torch.float64))
    with torch.no_grad():  # independent path: round to 8 bits, eval-mode model, one batch
        logits, f = tiny.model.forward_with_features(torch.round(x * 255) / 255)
    torch.testing.assert_close(probs, logits.double().softmax(1))
    torch.testing.assert_close(feats, f.double())
    with pytest.raises(ValueError, match="28, 28"):
        tiny.outputs(torch.rand(2, 3, 32, 32))


def test_quantize_rounds_to_8_bit_levels():
    x = torch.tensor([-1.0, 0.0, 0.3 / 255, 0.7 / 255, 1.0, 2.0])
    torch.testing.assert_close(quantize(x), torch.tensor([0.0, 0.0, 0.0, 1 / 255, 1.0, 1.0]))


def test_score_closed_forms(tiny):
    k = 10
    uniform = torch.full((100, k), 1 / k, dtype=torch.float64)
    assert tiny.score(uniform) == pytest.approx((1.0, 0.0), abs=1e-12)
    one_hot = torch.eye(k, dtype=torch.float64).repeat(10, 1)  # every split holds each class once
    assert tiny.score(one_hot) == pytest.approx((float(k), 0.0), abs=1e-9)
    p = torch.softmax(torch.randn(40, k, dtype=torch.float64), 1)
    assert tiny.score(p, splits=4) == pytest.approx(_numpy_score(p.numpy(), 4), rel=1e-12)


def test_frechet_is_zero_for_the_test_statistics_and_matches_numpy(tiny):
    feats = torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    same = TrainedClassifier(
        tiny.model,
        dataset="fashion-mnist",
        test_mu=feats.mean(0),
        test_sigma=torch.from_numpy(np.cov(feats.numpy(), rowvar=False)),
    )
    assert same.frechet(feats) == pytest.approx(0.0, abs=1e-8)
    other = feats * 1.5 + 0.3
    want = _numpy_fd(other.numpy(), feats.mean(0).numpy(), np.cov(feats.numpy(), rowvar=False))
    assert same.frechet(other) == pytest.approx(want, rel=1e-6)


def test_save_load_round_trip_and_weights_only_file(tiny, tmp_path):
    path = save_classifier(tiny, tmp_path / "x" / "fashion-mnist-classifier-v1.pt")
    blob = torch.load(path, weights_only=True)
    assert blob["version"] == 1 and blob["dataset"] == "fashion-mnist" and blob["metadata"] == {"a": 1}
    loaded = load_classifier("fmnist", path)
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(loaded.outputs(x), tiny.outputs(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded.test_sigma, tiny.test_sigma, rtol=0, atol=0)
    with pytest.raises(UserError, match="expected mnist"):
        load_classifier("mnist", path)


def test_missing_classifier_names_the_training_command(tmp_path, monkeypatch):
    import improved_gan.metrics.classifier as classifier_mod

    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(tmp_path))
    monkeypatch.setattr(classifier_mod, "PACKAGED_DIR", tmp_path / "nothing-shipped")
    assert classifier_path("fmnist") == tmp_path / "fashion-mnist-classifier-v1.pt"
    with pytest.raises(UserError, match="improved-gan train fmnist-classifier"):
        load_classifier("fashion-mnist")
    with pytest.raises(UserError, match="improved-gan train mnist-classifier"):
        load_classifier("mnist")
    with pytest.raises(UserError, match="no classifier metric"):
        load_classifier("cifar10")
    (tmp_path / "fashion-mnist-classifier-v1.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="not a readable"):
        load_classifier("fashion-mnist")


def _two_class_data(n: int, seed: int):
    """Dark images are class 0, bright images class 1 (uint8, (n, 1, 28, 28))."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    base = torch.where(labels == 1, 200, 40).view(n, 1, 1, 1)
    noise = torch.randint(-30, 31, (n, 1, 28, 28), generator=g)
    return (base + noise).to(torch.uint8), labels


def test_fit_classifier_learns_a_separable_problem():
    torch.manual_seed(0)
    images, labels = _two_class_data(256, 0)
    model = fit_classifier(
        SmallConvClassifier(1, 2, width=4, feature_dim=8), images, labels, epochs=2, batch_size=32, lr=1e-2
    )
    test_x, test_y = _two_class_data(100, 1)
    with torch.no_grad():
        assert torch.equal(model(test_x.float() / 255).argmax(1), test_y)


def test_train_classifier_writes_a_versioned_file(tmp_path, monkeypatch):
    import improved_gan.data

    train_x, train_y = _two_class_data(128, 0)
    test_x, test_y = _two_class_data(60, 1)
    fake = SimpleNamespace(
        train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y, num_classes=2
    )
    monkeypatch.setattr(improved_gan.data, "load_dataset", lambda name, data_dir=None: fake, raising=False)
    result = train_classifier(
        "fmnist", out=tmp_path, epochs=2, batch_size=32, lr=1e-2, width=4, feature_dim=5
    )
    path = tmp_path / "fashion-mnist-classifier-v1.pt"
    assert result["path"] == str(path) and result["dataset"] == "fashion-mnist" and result["version"] == 1
    loaded = load_classifier("fashion-mnist", path)
    probs, feats = loaded.outputs(test_x.float() / 255)
    assert result["test_accuracy"] == (probs.argmax(1) == test_y).double().mean().item()
    torch.testing.assert_close(loaded.test_mu, feats.mean(0))
    torch.testing.assert_close(loaded.test_sigma, torch.from_numpy(np.cov(feats.numpy(), rowvar=False)))
    assert result["real_classifier_score"] == pytest.approx(_numpy_score(probs.numpy(), 10)[0], rel=1e-9)
    assert loaded.metadata["test_accuracy"] == result["test_accuracy"]


def test_user_classifier_overrides_the_packaged_one(tiny, tmp_path, monkeypatch):
    import improved_gan.metrics.classifier as classifier_mod

    shipped, user = tmp_path / "shipped", tmp_path / "user"
    monkeypatch.setattr(classifier_mod, "PACKAGED_DIR", shipped)
    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(user))
    save_classifier(tiny, shipped / "fashion-mnist-classifier-v1.pt")
    assert classifier_path("fmnist") == shipped / "fashion-mnist-classifier-v1.pt"
    assert classifier_path("mnist") == user / "mnist-classifier-v1.pt"  # nothing shipped for MNIST
    save_classifier(tiny, user / "fashion-mnist-classifier-v1.pt")
    assert classifier_path("fmnist") == user / "fashion-mnist-classifier-v1.pt"


def test_steps_replace_epochs(monkeypatch):
    torch.manual_seed(0)
    images, labels = _two_class_data(100, 0)  # 4 batches of 32 per epoch
    model = SmallConvClassifier(1, 2, width=4, feature_dim=8)
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(m.training))
    fit_classifier(model, images, labels, epochs=5, batch_size=32, steps=6)
    assert calls == [True] * 6  # six optimizer steps, not 5 epochs x 4


def test_cli_classifier_preset_honours_steps_and_rejects_unknown_keys(tmp_path, monkeypatch, capsys):
    import improved_gan.data
    from improved_gan.cli import main

    train_x, train_y = _two_class_data(64, 0)
    test_x, test_y = _two_class_data(20, 1)
    fake = SimpleNamespace(
        train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y, num_classes=2
    )
    monkeypatch.setattr(improved_gan.data, "load_dataset", lambda name, data_dir=None: fake, raising=False)
    out = tmp_path / "c.pt"
    argv = ["train", "fmnist-classifier", "--out", str(out), "--quiet", "--steps", "3"]
    assert main(argv + ["--set", "width=4", "--set", "feature_dim=5", "--set", "batch_size=16"]) == 0
    meta = load_classifier("fmnist", out).metadata
    assert meta["steps"] == 3 and meta["batch_size"] == 16
    capsys.readouterr()
    for bad, match in [
        (["--set", "foo=1"], "--set foo: unknown key for a classifier preset"),
        (["--set", "lr=fast"], "expected a float"),
        (["--set", "epochs=0"], "expected a positive value"),
        (["--eval-every", "5"], "--eval-every: not used"),
    ]:
        assert main(["train", "fmnist-classifier", "--out", str(out), "--quiet", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err
