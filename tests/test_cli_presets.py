"""``improved-gan presets NAME``: the whole resolved configuration, in ``--set`` form, and what it needs."""

from __future__ import annotations

import pytest

from data_files import write_idx_dataset
from improved_gan.cli import main
from improved_gan.training.config import flat_fields, override
from improved_gan.training.presets import get_preset, preset_names


def _show(capsys, *argv):
    code = main(["presets", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_key_is_printed_and_reads_back_as_the_same_config(capsys):
    code, out, _ = _show(capsys, "fmnist-gan")
    assert code == 0
    lines = [line.strip() for line in out.splitlines() if line.startswith("  ") and "=" in line]
    assignments = [line for line in lines if line.split("=", 1)[0] in flat_fields(get_preset("fmnist-gan"))]
    keys = [a.split("=", 1)[0] for a in assignments]
    assert keys == list(flat_fields(get_preset("fmnist-gan")))  # every dotted key, once, in order
    # the printed values are --set values: applying them all to ANOTHER preset gives this preset's config
    rebuilt = override(get_preset("fmnist-ssl"), assignments)
    assert rebuilt == get_preset("fmnist-gan")
    assert "model.minibatch_kernels=50" in assignments and "loss.real_target=0.9" in assignments


@pytest.mark.parametrize("name", [n for n in preset_names() if not n.endswith("classifier")])
def test_every_preset_round_trips(name, capsys):
    code, out, _ = _show(capsys, name)
    assert code == 0
    flat = flat_fields(get_preset(name))
    assignments = [x.strip() for x in out.splitlines() if x.strip().split("=", 1)[0] in flat and "=" in x]
    assert override(get_preset("fmnist-ssl"), assignments) == get_preset(name)


def test_needs_data_and_classifier(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(tmp_path / "clf"))
    write_idx_dataset(tmp_path / "d", n_train=20, n_test=10)
    code, out, _ = _show(capsys, "fmnist-gan", "--data-dir", str(tmp_path / "d"))
    assert code == 0
    needs = out.split("needs:", 1)[1]
    assert "--data-dir, then $IMPROVED_GAN_DATA, then /usr/share/datasets/fashion-mnist" in needs
    assert f"found in {tmp_path / 'd'}" in needs
    expected_file = tmp_path / "clf" / "fashion-mnist-classifier-v1.pt"
    from improved_gan.metrics.classifier import PACKAGED_DIR

    # nothing trained by the user: the classifier shipped with the package is the one used
    assert f"{PACKAGED_DIR / 'fashion-mnist-classifier-v1.pt'} (found)" in needs
    expected_file.parent.mkdir()
    expected_file.write_bytes(b"x")
    _, out, _ = _show(capsys, "fmnist-gan", "--data-dir", str(tmp_path / "d"))
    assert f"{expected_file} (found)" in out


def test_missing_data_is_reported_not_fatal(capsys, tmp_path):
    code, out, _ = _show(capsys, "cifar10-ssl", "--data-dir", str(tmp_path / "none"))
    assert code == 0
    assert "not found now:" in out and "does not exist" in out
    assert "classifier file" not in out  # semi-supervised runs report test accuracy, no classifier needed


def test_toy_and_classifier_presets(capsys, tmp_path, monkeypatch):
    _, out, _ = _show(capsys, "ring8-gan")
    assert "no files" in out
    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(tmp_path))
    code, out, _ = _show(capsys, "fmnist-classifier")
    assert code == 0 and f"writes: {tmp_path / 'fashion-mnist-classifier-v1.pt'}" in out


def test_unknown_preset_is_one_error_line(capsys):
    code, out, err = _show(capsys, "fmnist-nope")
    assert code == 2 and out == ""
    assert err.startswith("error: unknown preset 'fmnist-nope'") and err.count("\n") == 1


def test_output_into_a_closed_pipe_ends_quietly():
    # `improved-gan presets fmnist-ssl | head -1`: the reader is gone before the command writes
    import os
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "improved_gan", "presets", "fmnist-ssl"],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(w)
    assert proc.returncode == 141 and proc.stderr == ""
