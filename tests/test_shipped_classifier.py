"""The Fashion-MNIST classifier shipped with the package: its file hash, and its accuracy on the real test set."""

import hashlib
from pathlib import Path

import pytest
import torch

from improved_gan.metrics.classifier import PACKAGED_DIR, load_classifier

SHIPPED = PACKAGED_DIR / "fashion-mnist-classifier-v1.pt"
# sha256 of the file built by `improved-gan train fmnist-classifier --out <SHIPPED>` (README, "Command line")
SHA256 = "e6f581ce69970ba54576dadd4c01b1414b7e6af2028a880dafbd0b14d3f89087"
SYSTEM_DATA = Path("/usr/share/datasets/fashion-mnist")


def test_shipped_file_is_the_published_one():
    assert SHIPPED.is_file(), f"{SHIPPED} is missing from the package"
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == SHA256
    blob = torch.load(SHIPPED, map_location="cpu", weights_only=True)  # plain tensors and metadata only
    assert blob["dataset"] == "fashion-mnist" and blob["version"] == 1


def test_shipped_classifier_is_the_default_on_a_fresh_machine(tmp_path, monkeypatch):
    from improved_gan.metrics.classifier import classifier_path

    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(tmp_path))  # nothing trained by the user
    assert classifier_path("fashion-mnist") == SHIPPED


@pytest.mark.skipif(not (SYSTEM_DATA / "t10k-images-idx3-ubyte.gz").exists(), reason="no Fashion-MNIST files")
def test_shipped_classifier_accuracy_on_the_real_test_set():
    from improved_gan.data import load_dataset

    data = load_dataset("fashion-mnist", data_dir=SYSTEM_DATA)
    trained = load_classifier("fashion-mnist", SHIPPED)
    model = trained.model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, 10_000, 1000):
            x = data.test_images[start : start + 1000].float() / 255  # uint8 levels already: no rounding
            correct += int((model(x).argmax(1) == data.test_labels[start : start + 1000]).sum())
    accuracy = correct / 10_000
    assert accuracy > 0.91
    assert accuracy == pytest.approx(trained.metadata["test_accuracy"], abs=1e-12)


def test_fmnist_gan_trains_on_a_fresh_machine_with_nothing_trained_first(tmp_path, monkeypatch):
    import json

    from data_files import write_idx_dataset
    from improved_gan.cli import main

    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(tmp_path / "empty"))  # no user classifier
    data = tmp_path / "data"
    write_idx_dataset(data, n_train=60, n_test=20, seed=2)
    run = tmp_path / "gan"
    small = ["--set", "data.batch_size=8", "--set", "model.init_batch=16", "--set", "train.eval_samples=30"]
    argv = ["train", "fmnist-gan", "--data-dir", str(data), "--out", str(run), "--steps", "2", "--quiet"]
    assert main(argv + small) == 0
    summary = json.loads((run / "summary.json").read_text())
    for key in ("classifier_score", "classifier_fid", "classifier_kid", "classifier_precision"):
        assert key in summary


def test_the_pre_training_metric_check_does_not_warn(tmp_path, monkeypatch):
    # before training, every metric runs once on 20 random images (a singular covariance by construction):
    # that check must not print a warning about too few samples; 200 evaluation samples of 128 features do not
    import warnings

    from data_files import write_idx_dataset
    from improved_gan.cli import main
    from improved_gan.metrics import SingularCovarianceWarning

    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(tmp_path / "empty"))  # no user classifier
    data = tmp_path / "fmnist"
    write_idx_dataset(data, n_train=60, n_test=20, seed=2)
    small = ["--set", "data.batch_size=8", "--set", "model.init_batch=16", "--set", "train.eval_samples=200"]
    argv = [
        "train",
        "fmnist-gan",
        "--data-dir",
        str(data),
        "--out",
        str(tmp_path / "g"),
        "--steps",
        "1",
        "--quiet",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv + small) == 0
    assert not [w for w in caught if issubclass(w.category, SingularCovarianceWarning)]
