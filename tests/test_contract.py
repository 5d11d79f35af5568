"""CONTRACT.md compliance: every public name of ``improved_gan.nn``, ``losses``, ``regularizers`` and ``metrics``
exists with its documented signature, plus the packaging promises (distribution name, console script,
``python -m improved_gan``, no torchvision import).

The behaviour of each name is tested in its own module's test file (test_minibatch_discrimination.py,
test_virtual_batchnorm.py, test_losses.py, test_regularizers.py, test_inception_score.py, test_frechet.py); only
the documented behaviours those files leave out are checked here, each against a closed form written below.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import improved_gan
from improved_gan import losses, metrics, regularizers
from improved_gan import nn as ig_nn

P = inspect.Parameter
POS, KW = P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY
REQUIRED = P.empty

# name -> (object, documented parameters as (name, kind, default)), transcribed from CONTRACT.md
DOCUMENTED = {
    "nn.MinibatchDiscrimination": (
        ig_nn.MinibatchDiscrimination,
        [
            ("in_features", POS, REQUIRED),
            ("num_kernels", POS, 100),
            ("kernel_dim", POS, 5),
            ("exclude_self", KW, True),
        ],
    ),
    "nn.VirtualBatchNorm": (
        ig_nn.VirtualBatchNorm,
        [("num_features", POS, REQUIRED), ("eps", POS, 1e-5), ("affine", POS, True)],
    ),
    "nn.virtual_batch_reference": (ig_nn.virtual_batch_reference, [("module", POS, REQUIRED)]),
    "losses.feature_matching_loss": (
        losses.feature_matching_loss,
        [("real_features", POS, REQUIRED), ("fake_features", POS, REQUIRED), ("distance", KW, "l2")],
    ),
    "losses.discriminator_loss": (
        losses.discriminator_loss,
        [
            ("real_logits", POS, REQUIRED),
            ("fake_logits", POS, REQUIRED),
            ("real_target", KW, 1.0),
            ("fake_target", KW, 0.0),
        ],
    ),
    "losses.semi_supervised_losses": (
        losses.semi_supervised_losses,
        [
            ("logits_labeled", POS, REQUIRED),
            ("labels", POS, REQUIRED),
            ("logits_unlabeled", POS, REQUIRED),
            ("logits_fake", POS, REQUIRED),
        ],
    ),
    "regularizers.HistoricalAveraging": (regularizers.HistoricalAveraging, [("params", POS, REQUIRED)]),
    "regularizers.HistoricalAveraging.update": (
        regularizers.HistoricalAveraging.update,
        [("self", POS, REQUIRED)],
    ),
    "regularizers.HistoricalAveraging.penalty": (
        regularizers.HistoricalAveraging.penalty,
        [("self", POS, REQUIRED)],
    ),
    "metrics.inception_score": (metrics.inception_score, [("probs", POS, REQUIRED), ("splits", POS, 10)]),
    "metrics.frechet_distance": (
        metrics.frechet_distance,
        [
            ("mu1", POS, REQUIRED),
            ("sigma1", POS, REQUIRED),
            ("mu2", POS, REQUIRED),
            ("sigma2", POS, REQUIRED),
        ],
    ),
}


def _signature(obj) -> inspect.Signature:
    return inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_signature(name):
    """The documented parameters come in the documented order, kinds and defaults; any extension is a
    keyword-only parameter with a default (so every call written against CONTRACT.md still works)."""
    obj, documented = DOCUMENTED[name]
    params = list(_signature(obj).parameters.values())
    if inspect.isclass(obj):
        assert params[0].name == "self"
        params = params[1:]
    got = {p.name: p for p in params}
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, POS)]
    doc_positional = [d for d in documented if d[1] is POS]
    assert [p.name for p in positional] == [d[0] for d in doc_positional], name
    for pname, kind, default in documented:
        assert pname in got, f"{name}: missing parameter {pname!r}"
        assert got[pname].kind is kind, f"{name}: {pname!r} is {got[pname].kind}, documented {kind}"
        assert got[pname].default == default, f"{name}: default of {pname!r}"
        assert type(got[pname].default) is type(default), f"{name}: type of the default of {pname!r}"
    extras = [p for p in params if p.name not in {d[0] for d in documented}]
    for p in extras:
        assert p.kind is KW and p.default is not REQUIRED, (
            f"{name}: extra parameter {p.name!r} must be optional"
        )


@pytest.mark.parametrize(
    "module, names",
    [
        (ig_nn, ["MinibatchDiscrimination", "VirtualBatchNorm", "virtual_batch_reference"]),
        (losses, ["feature_matching_loss", "discriminator_loss", "semi_supervised_losses"]),
        (regularizers, ["HistoricalAveraging"]),
        (metrics, ["inception_score", "frechet_distance"]),
    ],
)
def test_names_importable_from_their_module(module, names):
    for n in names:
        assert callable(getattr(module, n)), f"{module.__name__}.{n}"
    if hasattr(module, "__all__"):
        assert set(names) <= set(module.__all__)


# ------------------------------------------------------------------------------ behaviours not tested elsewhere


def test_minibatch_discrimination_defaults_exclude_self_and_output_layout():
    """With the defaults (B=100, C=5, exclude_self=True), identical rows are at L1 distance 0 from each other, so
    ``o[i, b] = (N - 1) + bias[b]`` exactly; ``.T`` is (A, B, C), ``.bias`` is (B,), and x comes first."""
    torch.manual_seed(0)
    layer = ig_nn.MinibatchDiscrimination(3)
    assert tuple(layer.T.shape) == (3, 100, 5)
    assert tuple(layer.bias.shape) == (100,)
    x = torch.randn(1, 3).expand(4, 3)  # (4, 3), four identical rows
    out = layer(x)  # (4, 103)
    assert out.shape == (4, 103)
    assert torch.equal(out[:, :3], x)
    torch.testing.assert_close(out[:, 3:], (3.0 + layer.bias.detach()).expand(4, 100))


def test_minibatch_discrimination_forward_uses_T_as_documented():
    """``M = einsum('na,abc->nbc', x, T)`` with the public ``.T``, checked against a broadcast written here."""
    torch.manual_seed(1)
    layer = ig_nn.MinibatchDiscrimination(4, 3, 2, exclude_self=False).double()
    x = torch.randn(5, 2, 2, dtype=torch.float64)  # flattened from dim 1 to (5, 4)
    M = torch.einsum("na,abc->nbc", x.reshape(5, 4), layer.T.detach())  # (N, B, C)
    o = torch.exp(-(M[:, None] - M[None, :]).abs().sum(-1)).sum(1)  # (N, B), j = i included
    expected = torch.cat([x.reshape(5, 4), o + layer.bias.detach()], dim=1)
    torch.testing.assert_close(layer(x), expected)


def test_virtual_batch_reference_reaches_every_nested_layer():
    """Inside the context every VirtualBatchNorm of the module, nested ones included, records the batch that
    reaches it; its per-channel mean over the examples and spatial positions is what it stores."""
    torch.manual_seed(2)
    inner = nn.Sequential(nn.Conv2d(2, 3, 1), ig_nn.VirtualBatchNorm(3))
    net = nn.Sequential(ig_nn.VirtualBatchNorm(2), nn.Sequential(inner)).double()
    ref = torch.randn(6, 2, 3, 3, dtype=torch.float64) * 2 + 1
    with ig_nn.virtual_batch_reference(net):
        net(ref)
    first, second = net[0], inner[1]
    mean, var = ref.mean(dim=(0, 2, 3), keepdim=True), ref.var(dim=(0, 2, 3), correction=0, keepdim=True)
    normed = (ref - mean) / torch.sqrt(
        var + first.eps
    )  # the reference batch, normalised with its own statistics
    h = inner[0](normed).detach()  # (6, 3, 3, 3): what reached the nested layer
    for layer, seen in ((first, ref), (second, h)):
        assert int(layer.ref_size) == 6
        torch.testing.assert_close(layer.ref_mean, seen.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(layer.ref_mean_sq, (seen * seen).mean(dim=(0, 2, 3)))


def test_historical_averaging_accepts_module_and_parameter_iterable_alike():
    lin = nn.Linear(2, 3)
    by_module, by_list = (
        regularizers.HistoricalAveraging(lin),
        regularizers.HistoricalAveraging(lin.parameters()),
    )
    snapshots = []
    for k in range(3):
        with torch.no_grad():
            lin.weight.fill_(float(k))
            lin.bias.fill_(2.0 * k)
        snapshots.append((lin.weight.detach().clone(), lin.bias.detach().clone()))
        by_module.update()
        by_list.update()
    with torch.no_grad():
        lin.weight.fill_(5.0)
    mean_w = torch.stack([s[0] for s in snapshots]).mean(0)
    mean_b = torch.stack([s[1] for s in snapshots]).mean(0)
    expected = ((lin.weight.detach() - mean_w) ** 2).sum() + ((lin.bias.detach() - mean_b) ** 2).sum()
    torch.testing.assert_close(by_module.penalty(), expected)
    torch.testing.assert_close(by_list.penalty(), expected)


def test_metrics_return_python_floats():
    probs = np.full((20, 4), 0.25)
    mean, std = metrics.inception_score(probs, 10)
    assert type(mean) is float and type(std) is float
    assert metrics.inception_score(torch.from_numpy(probs)) == (mean, std)  # splits defaults to 10
    fd = metrics.frechet_distance(np.zeros(2), np.eye(2), torch.ones(2), torch.eye(2))
    assert type(fd) is float
    assert fd == pytest.approx(2.0, abs=1e-9)  # |mu1 - mu2|^2 = 2, equal covariances add nothing


# ------------------------------------------------------------------------------------------------- packaging

_SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_distribution_name_and_import_package():
    dist = importlib.metadata.distribution("improved-gan")
    assert dist.metadata["Name"] == "improved-gan"
    assert "improved-gan" in importlib.metadata.packages_distributions().get("improved_gan", [])
    assert improved_gan.__version__ == dist.version


def test_console_script_resolves_to_cli_main():
    from improved_gan import cli

    scripts = [
        ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == "improved-gan"
    ]
    assert len(scripts) == 1
    assert scripts[0].value == "improved_gan.cli:main"
    assert scripts[0].load() is cli.main


def test_python_dash_m_help_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "improved_gan", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_SUBPROCESS_ENV,
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("presets", "train", "resume", "evaluate", "sample"):
        assert command in proc.stdout


def test_package_imports_without_torchvision():
    """Import every module of the package (not ``__main__``, which would run the CLI) and record any attempt
    to import torchvision, even one caught by a try/except."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import numpy, scipy, torch  # third-party imports happen before the recorder is installed

        attempts = []

        class Recorder:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torchvision":
                    attempts.append(name)
                return None

        sys.meta_path.insert(0, Recorder())
        import improved_gan
        names = [m.name for m in pkgutil.walk_packages(improved_gan.__path__, "improved_gan.")]
        for name in names:
            if not name.endswith("__main__"):
                importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torchvision")
        assert not attempts and not loaded, (attempts, loaded)
        print(len(names))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=_SUBPROCESS_ENV
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) > 10  # the walk found the package's modules
