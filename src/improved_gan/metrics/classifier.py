"""A small conv classifier for 28x28 grey-scale data and the "classifier score" / "classifier FD" built on it.

Inception-v3 features mean nothing on MNIST-like data (paper §4), so for Fashion-MNIST and MNIST we use
the Inception Score formula (paper section 4, ``exp(E_x KL(p(y|x) || p(y)))``, 10 in-order splits) on the
probabilities of a classifier trained on that data set, reported as ``classifier_score``, and the Frechet
distance of its penultimate features to those of the real test set, reported as ``classifier_fid``. The
features are the 128 PRE-activations of the last hidden layer: after the ReLU, many units are zero for every
image (52 of 128 in the trained Fashion-MNIST network), which makes the covariances singular. Neither number
is comparable with an Inception Score or an FID from Inception-v3.

The trained network is saved as ``{dataset}-classifier-v{VERSION}.pt`` in the classifier directory
(``$IMPROVED_GAN_CLASSIFIERS``, else ``~/.cache/improved-gan/classifiers``): a dict of tensors and plain
metadata that ``torch.load(path, weights_only=True)`` reads. The Fashion-MNIST classifier ships with the
package (:data:`PACKAGED_DIR`), so the Fashion-MNIST metrics work on a fresh machine; a file of the same name
in the classifier directory overrides it. The shipped file is rebuilt by (README, "Command line")::

    improved-gan train fmnist-classifier --out src/improved_gan/metrics/weights/fashion-mnist-classifier-v1.pt

It also stores the Gaussian statistics of the
real test set's features, so evaluation needs no data files. Inputs are images in [0, 1], shape
(N, 1, 28, 28); they are rounded to the 256 levels of an 8-bit image first (as if saved as PNG), as the real
data are.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from improved_gan.errors import UserError
from improved_gan.metrics.frechet import frechet_distance, gaussian_statistics
from improved_gan.metrics.inception_score import inception_score

VERSION = 1
FORMAT = "improved-gan-classifier"
ENV_DIR = "IMPROVED_GAN_CLASSIFIERS"
# Canonical data-set name -> name of the ``improved-gan train`` preset that trains its classifier.
TRAIN_PRESETS = {"fashion-mnist": "fmnist-classifier", "mnist": "mnist-classifier"}
#: Where the classifiers shipped with the package lie (Fashion-MNIST's; MNIST is user-supplied data).
PACKAGED_DIR = Path(__file__).resolve().parent / "weights"
#: ``improved-gan train fmnist-classifier --set KEY=VALUE``: the keys and their types.
TRAIN_OPTIONS = {"epochs": int, "batch_size": int, "lr": float, "width": int, "feature_dim": int, "seed": int}


def canonical_dataset(name: str) -> str:
    """The canonical data-set name (``fmnist`` -> ``fashion-mnist``, through the one alias table of
    :mod:`improved_gan._dataset_names`); UserError if it has no classifier."""
    from improved_gan._dataset_names import canonical_dataset_name

    try:
        key = canonical_dataset_name(name)
    except UserError:
        key = None
    if key not in TRAIN_PRESETS:
        raise UserError(
            f"no classifier metric for data set {name!r}; expected one of {sorted(TRAIN_PRESETS)}"
        )
    return key


def classifier_dir() -> Path:
    """``$IMPROVED_GAN_CLASSIFIERS``, else ``~/.cache/improved-gan/classifiers``."""
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "improved-gan" / "classifiers"


def classifier_path(dataset: str) -> Path:
    """The classifier file of ``dataset``: the user's in :func:`classifier_dir` if it exists, else the one
    shipped in :data:`PACKAGED_DIR` if there is one, else the user's path (where training writes it)."""
    name = f"{canonical_dataset(dataset)}-classifier-v{VERSION}.pt"
    user = classifier_dir() / name
    if not user.is_file() and (PACKAGED_DIR / name).is_file():
        return PACKAGED_DIR / name
    return user


def parse_train_options(assignments) -> dict:
    """``KEY=VALUE`` strings (``--set``) -> keyword arguments of :func:`train_classifier`; ConfigError for an
    unknown key or a bad value (the known keys are :data:`TRAIN_OPTIONS`)."""
    from improved_gan.errors import ConfigError

    out = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        if key not in TRAIN_OPTIONS:
            raise ConfigError(
                f"--set {key}: unknown key for a classifier preset (known: {', '.join(sorted(TRAIN_OPTIONS))})"
            )
        try:
            value = TRAIN_OPTIONS[key](text.strip())
        except ValueError:
            raise ConfigError(f"--set {key}={text}: expected a {TRAIN_OPTIONS[key].__name__}") from None
        if key != "seed" and not value > 0:
            raise ConfigError(f"--set {key}={text}: expected a positive value")
        out[key] = value
    return out


class SmallConvClassifier(nn.Module):
    """Three 3x3 conv blocks (conv-BN-ReLU, 2x2 max-pool), two dense layers; input (N, C, 28, 28) in [0, 1].

    Channels C -> w -> 2w -> 4w at 28 -> 14 -> 7 -> 3 pixels; dense 4w*9 -> feature_dim (its
    pre-activations are the Frechet features) -> ReLU -> num_classes; dropout 0.3 before each dense layer.
    About 7.6 M multiply-adds per 28x28 image with w=32.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, *, width: int = 32, feature_dim: int = 128
    ):
        super().__init__()
        self.config = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "width": width,
            "feature_dim": feature_dim,
        }
        blocks, c = [], in_channels
        for c_out in (width, 2 * width, 4 * width):
            blocks += [
                nn.Conv2d(c, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c = c_out
        self.conv = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.3)
        self.hidden = nn.Linear(4 * width * 9, feature_dim)
        self.out = nn.Linear(feature_dim, num_classes)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, C, 28, 28) in [0, 1] -> (logits (N, K), hidden pre-activations (N, feature_dim))."""
        h = self.conv((x - 0.5) / 0.5).flatten(1)  # (N, 4w*9)
        features = self.hidden(self.dropout(h))  # (N, F)
        return self.out(self.dropout(F.relu(features))), features  # (N, K), (N, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round images in [0, 1] to the 256 levels of an 8-bit image (values outside [0, 1] are clipped)."""
    return torch.round(images.clamp(0, 1) * 255) / 255


@torch.no_grad()
def classifier_outputs(model: SmallConvClassifier, images: torch.Tensor, *, batch_size: int = 500):
    """``images`` (N, C, 28, 28) in [0, 1] -> (probabilities (N, K), features (N, F)), float64 on the CPU.

    Images are quantised (:func:`quantize`) and fed in batches to ``model`` in eval mode, on its device.
    """
    c = model.config["in_channels"]
    if images.dim() != 4 or tuple(images.shape[1:]) != (c, 28, 28):
        raise ValueError(f"classifier expects images of shape (N, {c}, 28, 28), got {tuple(images.shape)}")
    model.eval()
    device = next(model.parameters()).device
    probs, feats = [], []
    for start in range(0, images.shape[0], batch_size):
        x = quantize(images[start : start + batch_size].float()).to(device)  # (B, C, 28, 28)
        logits, f = model.forward_with_features(x)  # (B, K), (B, F)
        probs.append(logits.double().softmax(dim=1).cpu())
        feats.append(f.double().cpu())
    return torch.cat(probs), torch.cat(feats)  # (N, K), (N, F)


class TrainedClassifier:
    """A trained :class:`SmallConvClassifier`, its data set, metadata and the real test-feature statistics.

    ``test_mu`` (F,), ``test_sigma`` (F, F) are float64 statistics of the test set's features.
    """

    def __init__(self, model, *, dataset, test_mu, test_sigma, metadata=None, device=None):
        self.model = (model if device is None else model.to(device)).eval()  # None: stays where it is
        self.dataset = dataset
        self.test_mu = torch.as_tensor(test_mu, dtype=torch.float64)  # (F,)
        self.test_sigma = torch.as_tensor(test_sigma, dtype=torch.float64)  # (F, F)
        self.metadata = dict(metadata or {})

    def outputs(self, images: torch.Tensor, *, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`classifier_outputs` of this classifier: (probabilities (N, K), features (N, F)), float64."""
        return classifier_outputs(self.model, images, batch_size=batch_size)

    def score(self, probs: torch.Tensor, *, splits: int = 10) -> tuple[float, float]:
        """Classifier score: the Inception Score formula on this classifier's ``probs`` (in-order splits)."""
        return inception_score(probs, splits=splits)

    def frechet(self, features: torch.Tensor) -> float:
        """Frechet distance between the Gaussian fits of ``features`` (N, F) and of the real test features."""
        mu, sigma = gaussian_statistics(features)
        return float(frechet_distance(mu, sigma, self.test_mu, self.test_sigma))


def save_classifier(trained: TrainedClassifier, path: str | os.PathLike) -> Path:
    """Write ``trained`` atomically: a dict of tensors and plain metadata (loads with weights_only=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
    blob = {
        "format": FORMAT,
        "version": VERSION,
        "dataset": trained.dataset,
        "config": trained.model.config,
        "state_dict": state,
        "test_mu": trained.test_mu.cpu(),
        "test_sigma": trained.test_sigma.cpu(),
        "metadata": trained.metadata,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def load_classifier(
    dataset: str, path: str | os.PathLike | None = None, *, device="cpu"
) -> TrainedClassifier:
    """The classifier of ``dataset`` from ``path`` (default :func:`classifier_path`); UserError if absent."""
    name = canonical_dataset(dataset)
    path = Path(path) if path is not None else classifier_path(name)
    if not path.is_file():
        raise UserError(
            f"no {name} classifier at {path}; train it with `improved-gan train "
            f"{TRAIN_PRESETS[name]}` (or set {ENV_DIR} to the folder that holds it)"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise UserError(
            f"{path} is not a readable improved-gan classifier file ({exc.__class__.__name__})"
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or blob.get("version") != VERSION:
        raise UserError(f"{path} is not an improved-gan classifier file of version {VERSION}")
    if blob["dataset"] != name:
        raise UserError(f"{path} holds a {blob['dataset']} classifier, expected {name}")
    model = SmallConvClassifier(**blob["config"])
    model.load_state_dict(blob["state_dict"])
    return TrainedClassifier(
        model,
        dataset=name,
        test_mu=blob["test_mu"],
        test_sigma=blob["test_sigma"],
        metadata=blob["metadata"],
        device=device,
    )


def fit_classifier(
    model, images, labels, *, epochs=5, batch_size=128, lr=2e-3, seed=0, steps=None, progress=False
):
    """Train ``model`` (Adam, cosine-decayed step size) on uint8 ``images`` (N, C, 28, 28), ``labels`` (N,).

    Batches are drawn from a seeded permutation per epoch; the images stay on their device as uint8. ``steps``
    (optional) replaces ``epochs``: that many optimizer steps, the step size decaying over them.
    """
    from tqdm import tqdm

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(images.shape[0] / batch_size)
    total = epochs * steps_per_epoch if steps is None else int(steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    model.train()
    bar = tqdm(total=total, disable=not progress, desc="classifier", unit="step")
    done = 0
    for _ in range(math.ceil(total / steps_per_epoch)):
        order = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], batch_size):
            if done == total:
                break
            done += 1
            idx = order[start : start + batch_size]
            x = images[idx].to(device).float() / 255  # (B, C, 28, 28)
            loss = F.cross_entropy(model(x), labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return model.eval()


def package_classifier(model, data, *, dataset: str, seed: int = 0, metadata=None) -> TrainedClassifier:
    """Test a trained ``model`` on ``data`` (an ImageDataset) and attach the test statistics and ceilings.

    Adds to ``metadata``: ``test_accuracy``; ``real_classifier_score`` (and ``_std``) of the test set; and
    ``real_classifier_fid``, the classifier FD of a seeded 10,000-image training subset to the test
    statistics (the protocol applied to generated samples).
    """
    test_probs, test_feats = classifier_outputs(model, data.test_images.float() / 255)  # (N, K), (N, F)
    mu, sigma = gaussian_statistics(test_feats)
    trained = TrainedClassifier(model, dataset=dataset, test_mu=mu, test_sigma=sigma)
    g = torch.Generator().manual_seed(seed)
    subset = torch.randperm(data.train_images.shape[0], generator=g)[:10_000]  # (n,)
    _, train_feats = trained.outputs(data.train_images[subset].float() / 255)  # (n, F)
    score_mean, score_std = trained.score(test_probs)
    trained.metadata = {
        **(metadata or {}),
        "test_accuracy": (test_probs.argmax(1) == data.test_labels).double().mean().item(),
        "real_classifier_score": score_mean,
        "real_classifier_score_std": score_std,
        "real_classifier_fid": trained.frechet(train_feats),
    }
    return trained


def train_classifier(
    dataset_name,
    *,
    data_dir=None,
    out=None,
    epochs=5,
    batch_size=128,
    lr=2e-3,
    width=32,
    feature_dim=128,
    seed=0,
    steps=None,
    device="cpu",
    progress=False,
) -> dict:
    """Train, test and save the classifier of ``dataset_name``; returns a JSON-ready dict of the results.

    ``out`` is a ``.pt`` file or a folder (default :func:`classifier_dir`). The results hold the test accuracy
    and the real-data ceilings: the classifier score of the test set and the classifier FD of a seeded
    10,000-image training subset to the test statistics (the protocol used for generated samples).
    ``steps`` (optional) trains for that many optimizer steps instead of ``epochs`` epochs.
    """
    from improved_gan.data import load_dataset

    name = canonical_dataset(dataset_name)
    data = load_dataset(name, data_dir=data_dir)
    torch.manual_seed(seed)
    c = data.train_images.shape[1]
    model = SmallConvClassifier(c, data.num_classes, width=width, feature_dim=feature_dim).to(device)
    t0 = time.perf_counter()
    fit_classifier(
        model,
        data.train_images,
        data.train_labels,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        steps=steps,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    meta = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    meta["train_seconds"] = seconds
    trained = package_classifier(model, data, dataset=name, seed=seed, metadata=meta)
    path = Path(out) if out is not None else classifier_dir()
    path = save_classifier(trained, path if path.suffix == ".pt" else path / classifier_path(name).name)
    return {"dataset": name, "path": str(path), "version": VERSION, **trained.metadata}
