"""Small things a new user sees: ``improved-gan --version`` and short reprs of the data sets."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from data_files import write_idx_dataset
from improved_gan.cli import main
from improved_gan.data import load_dataset, load_toy


def test_version_option_prints_the_installed_version_and_exits_0(capsys):
    expected = importlib.metadata.version("improved-gan")  # the installed distribution's metadata
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"improved-gan {expected}"
    p = subprocess.run([sys.executable, "-m", "improved_gan", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"improved-gan {expected}" and p.stderr == ""


def test_image_dataset_repr_is_one_short_line_with_sizes_and_dtypes(tmp_path):
    write_idx_dataset(tmp_path, n_train=60, n_test=20, seed=1)
    ds = load_dataset("fashion-mnist", tmp_path)
    text = repr(ds)
    assert "\n" not in text and len(text) < 300, text  # was 150 lines of tensor values
    assert "tensor(" not in text
    for part in ("'fashion-mnist'", "60 images (1, 28, 28) uint8", "20 images (1, 28, 28) uint8", "int64"):
        assert part in text, (part, text)
    assert "num_classes=10" in text and str(tmp_path) in text
    assert str(ds) == text


def test_toy_mixture_repr_names_its_modes_not_the_centres_tensor():
    text = repr(load_toy("grid25"))
    assert text == "GaussianMixture2D(name='grid25', num_modes=25, std=0.05)"
