"""``improved-gan score`` and ``sample --out .npz``: inputs, detection, errors, and values against numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from improved_gan.cli import main
from improved_gan.errors import UserError
from improved_gan.scoring import array_to_samples, detect_range
from metric_helpers import fresh_caches, save_tiny_classifier  # noqa: F401 (an autouse fixture)


@pytest.fixture
def tiny_classifier(tmp_path, monkeypatch):
    """A random width-4 classifier installed as the user's Fashion-MNIST classifier."""
    folder = tmp_path / "classifiers"
    _, model, ref = save_tiny_classifier(folder / "fashion-mnist-classifier-v1.pt")
    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(folder))
    return model, ref


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([0, 255], dtype=np.uint8), "0,255"),
        (np.array([0.0, 0.5, 1.0]), "0,1"),
        (np.array([-1.0, 0.2, 1.0], dtype=np.float32), "-1,1"),
        (np.array([0.0, 17.0, 200.0]), "0,255"),
        (np.array([3, 250], dtype=np.int64), "0,255"),
    ],
)
def test_detect_range(array, expected):
    assert detect_range(array, "x") == expected


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([0.0, 1.5]), "ambiguous"),  # [0, 1] overshooting, or a dark [0, 255] image?
        (np.array([0.0, 17.5, 200.0]), "ambiguous"),  # not integral: not an 8-bit image
        (np.array([-3.0, 1.0]), "fit no image range"),
        (np.array([0.0, 300.0]), "ambiguous"),
        (np.array([-1, 300]), "integer values"),
    ],
)
def test_detect_range_refuses_to_guess(array, match):
    with pytest.raises(UserError, match=match):
        detect_range(array, "x")


def test_layouts_and_conversion_to_uint8():
    rng = np.random.default_rng(0)
    x = rng.random((4, 5, 6, 3))  # NHWC floats in [0, 1]
    s = array_to_samples(x, "x")
    assert s.images.dtype == torch.uint8 and tuple(s.images.shape) == (4, 3, 5, 6)
    np.testing.assert_array_equal(s.images.numpy(), np.round(x * 255).astype(np.uint8).transpose(0, 3, 1, 2))
    s = array_to_samples(x.transpose(0, 3, 1, 2) * 2 - 1, "x")  # NCHW in [-1, 1]
    np.testing.assert_array_equal(s.images.numpy(), np.round(x * 255).astype(np.uint8).transpose(0, 3, 1, 2))
    s = array_to_samples((x[..., 0] * 255).round().astype(np.uint8), "x")  # (N, H, W)
    assert tuple(s.images.shape) == (4, 1, 5, 6)
    with pytest.raises(UserError, match="name the layout"):
        array_to_samples(np.zeros((2, 3, 4, 3), np.uint8), "x")
    assert tuple(array_to_samples(np.zeros((2, 3, 4, 3), np.uint8), "x", layout="nhwc").images.shape) == (
        2,
        3,
        3,
        4,
    )
    with pytest.raises(UserError, match="no image array"):
        array_to_samples(np.zeros((2, 5, 4, 4), np.uint8), "x")
    with pytest.raises(UserError, match="outside the range 0,1"):
        array_to_samples(x * 3, "x", value_range="0,1")
    assert array_to_samples(rng.random((7, 3)), "f").features.shape == (7, 3)


def test_classifier_score_of_npz_png_folder_and_npy_agree_with_numpy(tiny_classifier, tmp_path, capsys):
    model, ref = tiny_classifier
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", x=x)
    np.save(tmp_path / "s.npy", x[:, :, :, None].astype(np.float32) / 255)  # (N, H, W, 1) float in [0, 1]
    folder = tmp_path / "png"
    folder.mkdir()
    for i, img in enumerate(x):
        Image.fromarray(img, mode="L").save(folder / f"{i:03d}.png")
    with torch.no_grad():
        logits, feats = model.forward_with_features(torch.from_numpy(x[:, None]).float() / 255)
    p = logits.double().softmax(1).numpy()
    scores = [np.exp((q * (np.log(q) - np.log(q.mean(0)))).sum(1).mean()) for q in np.split(p, 3)]
    f = feats.double().numpy()
    s1, s2 = np.cov(f.T), np.cov(ref.T)
    fd = ((f.mean(0) - ref.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    results = []
    for src in ("s.npz", "s.npy", "png"):
        out = tmp_path / f"{src}.json"
        code, text, err = _run(
            ["score", str(tmp_path / src), "--metrics", "classifier_score,classifier_fd", "--splits", "3"]
            + ["--out", str(out)],
            capsys,
        )
        assert code == 0, err
        assert "classifier_score" in text and "meaning" in text
        results.append(json.loads(out.read_text()))
    for r in results:
        assert r["num_samples"] == 30
        assert r["values"]["classifier_score"] == pytest.approx(np.mean(scores), rel=1e-9)
        assert r["values"]["classifier_score_std"] == pytest.approx(np.std(scores), rel=1e-6, abs=1e-12)
        assert r["values"]["classifier_fid"] == pytest.approx(fd, rel=1e-5)  # classifier_fd: an alias
    assert results[0]["values"] == results[1]["values"] == results[2]["values"]


def test_feature_arrays_fid_kid_pr_and_bootstrap_match_numpy(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(60, 4)), rng.normal(size=(50, 4)) * 1.5 + 0.3
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "r.json"
    argv = ["score", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--kid-subsets", "5"]
    code, text, err = _run(argv + ["--kid-subset-size", "20", "--out", str(out), "--bootstrap", "5"], capsys)
    assert code == 0, err
    r = json.loads(out.read_text())
    v = r["values"]
    s1, s2 = np.cov(a.T), np.cov(b.T)
    fd = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert v["fid"] == pytest.approx(fd, rel=1e-9)
    state, kids = np.random.RandomState(2020), []
    for _ in range(5):
        x, y = a[state.choice(60, 20, replace=False)], b[state.choice(50, 20, replace=False)]
        kxx, kyy, kxy = ((u @ w.T / 4 + 1) ** 3 for u, w in ((x, x), (y, y), (x, y)))
        kids.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (20 * 19) - 2 * kxy.mean())
    assert v["kid"] == pytest.approx(np.mean(kids), rel=1e-9)

    def kth(u):
        d = np.sqrt(((u[:, None] - u[None]) ** 2).sum(-1)) + np.diag(np.full(len(u), np.inf))
        return np.sort(d, 1)[:, 2]

    def inside(q, c, rad):
        return (np.sqrt(((q[:, None] - c[None]) ** 2).sum(-1)) <= rad[None] * (1 + 1e-9)).any(1).mean()

    assert v["precision"] == pytest.approx(inside(a, b, kth(b)))
    assert v["recall"] == pytest.approx(inside(b, a, kth(a)))
    for key in ("fid", "kid", "precision", "recall"):
        lo, hi = r["intervals"][key]
        assert lo <= hi
    assert "95% interval" in text


def test_bootstrap_halves_too_small_for_a_metric_is_one_error_line(tmp_path, capsys):
    rng = np.random.default_rng(3)
    np.save(tmp_path / "a.npy", rng.normal(size=(7, 4)))
    np.save(tmp_path / "b.npy", rng.normal(size=(70, 4)))
    argv = ["score", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--metrics", "pr"]
    assert _run(argv, capsys)[0] == 0  # 7 samples are enough for k = 3 neighbours without the bootstrap
    code, _, err = _run(argv + ["--bootstrap", "5"], capsys)
    line = _one_error_line(err)
    assert code == 2 and "a.npy: 7 samples" in line and "halves of the bootstrap have 3" in line
    assert "pr with k=3 needs at least 4" in line


def test_small_sample_policy_kid_subsets_shrink_and_fd_warns(tmp_path, capsys):
    """One policy in every path: KID subsets shrink to the smaller set; an FD with N <= D warns; both computed."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 40)), rng.normal(size=(60, 40))
    np.save(tmp_path / "few.npy", a)
    np.save(tmp_path / "ok.npy", b)
    out = tmp_path / "r.json"
    argv = ["score", str(tmp_path / "few.npy"), str(tmp_path / "ok.npy"), "--metrics", "fid,kid"]
    code, _, err = _run(argv + ["--kid-subsets", "4", "--out", str(out)], capsys)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "30 samples of 40 features" in lines[0]
    r = json.loads(out.read_text())
    assert r["settings"]["kid_subset_size"] == 30  # min(1000, 30, 60)
    state, kids = np.random.RandomState(2020), []
    for _ in range(4):
        x, y = a[state.choice(30, 30, replace=False)], b[state.choice(60, 30, replace=False)]
        kxx, kyy, kxy = ((u @ w.T / 40 + 1) ** 3 for u, w in ((x, x), (y, y), (x, y)))
        kids.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (30 * 29) - 2 * kxy.mean())
    assert r["values"]["kid"] == pytest.approx(np.mean(kids), rel=1e-9)
    from improved_gan.metrics import SingularCovarianceWarning, compute_metrics

    with pytest.warns(SingularCovarianceWarning):
        direct = compute_metrics(["fid", "kid"], a, dataset=None, reference=b, kid_subsets=4)
    assert direct == {k: r["values"][k] for k in ("fid", "kid", "kid_std")}


def test_sample_npz_and_scoring_a_run_folder(tmp_path, capsys):
    run = tmp_path / "toy"
    small = ["--set", "data.batch_size=16", "--set", "model.init_batch=16", "--set", "train.metrics=none"]
    assert main(["train", "ring8-gan", "--out", str(run), "--steps", "2", "--quiet", *small]) == 0
    npz = tmp_path / "pts.npz"
    code, text, err = _run(["sample", str(run), "--num", "40", "--out", str(npz)], capsys)
    assert code == 0, err
    with np.load(npz) as f:
        pts = f["x"]
    assert pts.shape == (40, 2) and pts.dtype == np.float32
    out = tmp_path / "r.json"
    argv = ["score", str(run), "--reference", "ring8", "--num", "40", "--metrics", "pr,kid"]
    code, text, err = _run(argv + ["--kid-subset-size", "40", "--out", str(out)], capsys)
    assert code == 0, err
    r = json.loads(out.read_text())
    assert r["num_samples"] == 40 and r["num_reference"] == 40
    direct = tmp_path / "d.json"
    argv = ["score", str(npz), "--reference", "ring8", "--metrics", "pr,kid", "--kid-subset-size", "40"]
    assert main(argv + ["--out", str(direct)]) == 0
    assert json.loads(direct.read_text())["values"] == pytest.approx(r["values"], rel=1e-6)


def test_sample_npz_of_an_image_run_is_uint8_nchw(tmp_path, capsys):
    from run_checks import tiny_fmnist_gan_run

    data, run = tiny_fmnist_gan_run(tmp_path, seed=1)
    npz = tmp_path / "s.npz"
    assert main(["sample", str(run), "--num", "12", "--out", str(npz)]) == 0
    with np.load(npz) as f:
        x = f["x"]
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.uint8


def test_every_bad_input_is_one_error_line(tiny_classifier, tmp_path, capsys):
    rng = np.random.default_rng(3)
    np.save(tmp_path / "few.npy", rng.normal(size=(30, 40)))
    np.save(tmp_path / "ok.npy", rng.normal(size=(60, 40)))
    np.save(tmp_path / "small.npy", rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8))
    np.save(tmp_path / "rgb.npy", rng.integers(0, 256, size=(12, 3, 32, 32), dtype=np.uint8))
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 28, 28)), b=np.zeros((3, 28, 28)))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(mixed / "a.png")
    Image.fromarray(np.zeros((32, 28), np.uint8)).save(mixed / "b.png")
    (tmp_path / "empty").mkdir()
    cases = [
        (["ok.npy", "--reference", "ring8", "--metrics", "fid"], "has 40 columns, ring8 2"),
        (
            ["small.npy", "--metrics", "classifier_score"],
            "5 samples, classifier_score with splits=10 needs at least 10",
        ),
        (["rgb.npy", "--metrics", "classifier_score"], "28x28 grey images"),
        (["two.npz"], "pass --key"),
        (["obj.npy"], "not a readable numpy array"),
        (["mixed"], "different sizes: a.png is 28x28, b.png is 28x32"),
        (["empty"], "no .png/.jpg/.jpeg"),
        (["ok.npy", "--metrics", "fid"], "give one (INPUT2 or --reference NAME"),
        (["ok.npy", "--metrics", "nope"], "unknown metric"),
        (["ok.npy", "--reference", "imagenet-val", "--metrics", "fid"], "expected one of"),
        (["rgb.npy", "--metrics", "is", "--inception-weights", str(tmp_path / "w.pth")], "weights-inception"),
        (["missing.npz"], "no such file"),
    ]
    for args, match in cases:
        files = {
            "few.npy",
            "ok.npy",
            "small.npy",
            "rgb.npy",
            "two.npz",
            "obj.npy",
            "mixed",
            "empty",
            "missing.npz",
        }
        argv = ["score"] + [str(tmp_path / a) if a in files else a for a in args]
        code, _, err = _run(argv, capsys)
        assert code == 2, (args, err)
        assert match in _one_error_line(err), (args, err)


def test_missing_inception_weights_say_where_to_put_them(tmp_path, monkeypatch, capsys):
    from improved_gan.metrics import inception as inception_mod

    monkeypatch.delenv(inception_mod.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(inception_mod, "weights_search_path", lambda: [tmp_path / inception_mod.WEIGHTS_NAME])
    np.save(tmp_path / "rgb.npy", np.zeros((12, 3, 8, 8), np.uint8))
    code, _, err = _run(["score", str(tmp_path / "rgb.npy"), "--metrics", "is"], capsys)
    line = _one_error_line(err)
    assert code == 2 and inception_mod.WEIGHTS_NAME in line and str(tmp_path) in line


def test_cli_choices_are_the_scoring_modules():
    from improved_gan import cli, scoring
    from improved_gan.metrics import inputs

    assert scoring.RANGES is inputs.RANGES and scoring.detect_range is inputs.detect_range

    assert cli.SCORE_RANGES == tuple(scoring.RANGES) and cli.SCORE_LAYOUTS == scoring.LAYOUTS


def test_range_help_reads_as_three_choices(capsys):
    main(["score", "--help"])  # main turns argparse's exit into a return value
    out = capsys.readouterr().out
    assert "--range 0,255|0,1|-1,1" in out and "{0,255,0,1,-1,1}" not in out


def test_a_decompression_bomb_png_is_one_error_line(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "b.png")
    # Pillow refuses images over twice MAX_IMAGE_PIXELS: 28x28 = 784 passes, 64x64 = 4096 > 2 x 1000 does not
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    code, _, err = _run(["score", str(folder), "--metrics", "classifier_score"], capsys)
    line = _one_error_line(err)
    assert code == 2 and "b.png" in line and "decompression-bomb limit" in line
