"""The scripts in examples/ run as a user runs them (a subprocess, a few steps on a tiny data folder), are of
example size, and import only the library's public names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import improved_gan
from data_files import write_idx_dataset

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = ["dcgan_improved.py", "semi_supervised.py", "inception_score_of_my_samples.py"]


@pytest.fixture(scope="module")
def tiny_fmnist(tmp_path_factory):
    d = tmp_path_factory.mktemp("fmnist")
    write_idx_dataset(d, n_train=200, n_test=50, seed=5)
    return d


def _run(script, *args, cwd):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_is_a_standalone_script_of_the_public_api(script):
    text = (EXAMPLES / script).read_text()
    assert 50 <= len(text.splitlines()) <= 150
    for option in ("--steps", "--data-dir"):
        assert f'"{option}"' in text
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("improved_gan"):
            if node.module == "improved_gan":
                assert all(a.name in improved_gan.__all__ for a in node.names), [a.name for a in node.names]
            else:  # the paper's Inception network lives in its documented module
                assert node.module == "improved_gan.metrics.inception", node.module
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("improved_gan") for a in node.names)


def test_dcgan_improved_writes_a_sample_grid(tiny_fmnist, tmp_path):
    out = _run(
        "dcgan_improved.py",
        "--steps",
        2,
        "--batch-size",
        16,
        "--data-dir",
        tiny_fmnist,
        "--out",
        "grid.png",
        cwd=tmp_path,
    )
    assert "step 2: loss_d" in out
    with Image.open(tmp_path / "grid.png") as image:
        assert image.size == (8 * 28, 8 * 28) and image.mode == "L"


def test_semi_supervised_prints_a_test_accuracy(tiny_fmnist, tmp_path):
    out = _run(
        "semi_supervised.py", "--steps", 2, "--batch-size", 20, "--data-dir", tiny_fmnist, cwd=tmp_path
    )
    assert "100 labelled examples, 200 unlabelled, 50 test" in out
    match = re.search(r"test accuracy (\d+\.\d\d)% with 100 labels after 2 steps", out)
    assert match and 0 <= float(match.group(1)) <= 100
    assert round(float(match.group(1)) / 100 * 50) == pytest.approx(
        float(match.group(1)) / 100 * 50
    )  # k / 50


def test_score_example_gives_1_for_identical_images_and_reuses_its_classifier(tiny_fmnist, tmp_path):
    """One image repeated: every p(y|x) equals p(y), so each split's KL is 0 and the score is exactly 1."""
    images = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 28, 28), dtype=np.uint8), 40, axis=0)
    np.save(tmp_path / "mine.npy", images)
    args = ["--images", "mine.npy", "--data-dir", tiny_fmnist, "--steps", 2]
    out = _run("inception_score_of_my_samples.py", *args, "--save", "clf.pt", cwd=tmp_path)
    assert "classifier score 1.000 +- 0.000 of 40 images" in out
    assert "training one for 2 steps" in out
    again = _run("inception_score_of_my_samples.py", *args, "--classifier", "clf.pt", cwd=tmp_path)
    assert "training one" not in again
    assert again.splitlines()[-1] == out.splitlines()[-1]  # the same network gives the same distance


def test_score_example_default_stand_in(tiny_fmnist, tmp_path):
    out = _run("inception_score_of_my_samples.py", "--data-dir", tiny_fmnist, "--steps", 1, cwd=tmp_path)
    assert "no --images" in out and "of 50 images" in out and "Frechet distance" in out
