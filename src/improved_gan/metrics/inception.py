"""The paper's Inception Score for 32x32 RGB samples (CIFAR-10, SVHN): images -> Inception-v3 probabilities.

Paper §4: ``IS = exp(E_x KL(p(y|x) || p(y)))`` over 50,000 samples in 10 in-order
splits, with ``p(y|x) = softmax`` of the 2015 Inception-v3 graph's 1008 logits taken WITHOUT the final bias,
on images in [0, 255] resized bilinearly (TensorFlow 1.x) to 299x299. This adapter turns generated images into
those probabilities; the formula itself is :func:`improved_gan.metrics.inception_score`.

Backends (``backend=``): ``"torch-fidelity"`` uses ``torch_fidelity``'s ``FeatureExtractorInceptionV3`` (the
optional extra ``improved-gan[inception]``; it needs a torchvision that imports beside your torch);
``"builtin"`` uses :class:`improved_gan.metrics.inception_net.InceptionV3TF2015`, the same graph written here;
``"auto"`` (default) takes torch-fidelity when it imports, else the builtin one. Both read the same local
weights file (torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``); nothing is ever downloaded,
and torchvision's ImageNet Inception (whose scores are lower) is never used as a fallback.

Deviations from torch-fidelity's ``calculate_metrics(isc=True)``: it shuffles the samples before splitting
(``samples_shuffle=True``); we split in order as the paper's code does. Generated images in [0, 1] are
rounded to uint8 (``round(255 x)``) first, as if saved as PNG, since both networks take 8-bit images.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from improved_gan.errors import UserError
from improved_gan.metrics.inception_net import InceptionV3TF2015
from improved_gan.metrics.inception_score import inception_score

ENV_WEIGHTS = "IMPROVED_GAN_INCEPTION_WEIGHTS"
WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_NAME
BACKENDS = ("auto", "builtin", "torch-fidelity")


def weights_search_path() -> list[Path]:
    """Where the weights are looked for when neither an argument nor the environment names a file."""
    return [
        Path.home() / ".cache" / "improved-gan" / WEIGHTS_NAME,
        Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME,  # where torch-fidelity itself saves it
    ]


def resolve_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The weights file: ``path``, else ``$IMPROVED_GAN_INCEPTION_WEIGHTS``, else the search path."""
    named = path if path is not None else os.environ.get(ENV_WEIGHTS) or None
    if named is not None:
        named = Path(named).expanduser()
        if not named.is_file():
            source = "--inception-weights" if path is not None else ENV_WEIGHTS
            raise UserError(
                f"Inception weights file {named} (from {source}) does not exist; expected "
                f"torch-fidelity's {WEIGHTS_NAME}"
            )
        return named
    for candidate in weights_search_path():
        if candidate.is_file():
            return candidate
    raise UserError(
        f"the Inception Score needs the 2015 Inception-v3 weights {WEIGHTS_NAME} (torch-fidelity's "
        f"inception-v3-compat, published at {WEIGHTS_URL}); improved-gan never downloads it: pass "
        f"--inception-weights FILE, set {ENV_WEIGHTS}=FILE, or put it at {weights_search_path()[0]}"
    )


def load_inception_weights(model: InceptionV3TF2015, path: str | os.PathLike) -> InceptionV3TF2015:
    """Fill ``model`` from a torch-fidelity weights file, keys matched strictly; UserError on a foreign file.

    The converted file has no ``num_batches_tracked`` entries (a plain dict saved without version metadata);
    batch norm's loader fills those in, every other key must match exactly.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(
            f"cannot read Inception weights {path} with torch.load(weights_only=True): "
            f"{exc.__class__.__name__}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict of tensors (expected torch-fidelity's {WEIGHTS_NAME})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[:2]
        raise UserError(
            f"{path} does not match the 2015 Inception-v3 graph: {' '.join(first)[:300]}"
        ) from exc
    return model.eval()


def _torch_fidelity_extractor(path: Path):
    """torch-fidelity's extractor reading ``path``; None when torch_fidelity (or torchvision) won't import."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception:  # ImportError, or torchvision failing to load beside this torch
        return None
    return FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
    )


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (float) -> uint8 ``round(255 x)``, clipped; uint8 input is returned unchanged."""
    if images.dtype == torch.uint8:
        return images
    return torch.round(images.float().clamp(0, 1) * 255).to(torch.uint8)


class InceptionScorer:
    """Images (N, 3, H, W) -> the 2015 Inception-v3's pool features (N, 2048) (for FID, KID, precision and
    recall), unbiased logits (N, 1008), probabilities and score."""

    def __init__(self, weights: str | os.PathLike | None = None, *, device="cpu", backend: str = "auto"):
        if backend not in BACKENDS:
            raise UserError(f"unknown Inception backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.weights = resolve_inception_weights(weights)
        self.device = torch.device(device)
        net = _torch_fidelity_extractor(self.weights) if backend != "builtin" else None
        if net is None and backend == "torch-fidelity":
            raise UserError(
                "backend torch-fidelity needs `pip install improved-gan[inception]` (torch-fidelity "
                "and a torchvision built for your torch); or use the builtin backend"
            )
        self.backend = "torch-fidelity" if net is not None else "builtin"
        if net is None:
            net = load_inception_weights(InceptionV3TF2015(), self.weights)
        self.net = net.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def features_and_logits(
        self, images: torch.Tensor, *, batch_size: int = 50
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images`` (N, 3, H, W), float in [0, 1] or uint8 -> (pool features (N, 2048), logits without the
        final bias (N, 1008)), float32 on the CPU, in one pass."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"the Inception network needs RGB images (N, 3, H, W), got {tuple(images.shape)}"
            )
        pools, logits = [], []
        for start in range(0, images.shape[0], batch_size):
            x = to_uint8(images[start : start + batch_size]).to(self.device)  # (B, 3, H, W) uint8
            if self.backend == "builtin":
                pool = self.net.pool_features(x)  # (B, 2048)
                y = pool @ self.net.fc.weight.T  # (B, 1008)
            else:  # torch-fidelity's extractor: a (pool, logits_unbiased) tuple
                pool, y = self.net(x)
            pools.append(pool.float().cpu())
            logits.append(y.float().cpu())
        return torch.cat(pools), torch.cat(logits)  # (N, 2048), (N, 1008)

    def logits(self, images: torch.Tensor, *, batch_size: int = 50) -> torch.Tensor:
        """``images`` (N, 3, H, W), float in [0, 1] or uint8 -> logits without the final bias (N, 1008)."""
        return self.features_and_logits(images, batch_size=batch_size)[1]

    def probabilities(self, images: torch.Tensor, *, batch_size: int = 50) -> torch.Tensor:
        """``softmax`` of :meth:`logits` in float64, (N, 1008)."""
        return self.logits(images, batch_size=batch_size).double().softmax(dim=1)

    def score(self, images: torch.Tensor, *, splits: int = 10, batch_size: int = 50) -> tuple[float, float]:
        """The paper's Inception Score ``(mean, std)`` of ``images`` (use 50,000 for comparable numbers)."""
        return inception_score(self.probabilities(images, batch_size=batch_size), splits=splits)
