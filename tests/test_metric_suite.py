"""The one metric suite: every path (training loop, evaluate, score, compute_metrics) gives the same numbers;
input forms; the on-disk reference cache; the data-set alias table; feature extraction sharded over ranks."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import linalg

from improved_gan.cli import main
from improved_gan.metrics import compute_metrics, features
from improved_gan.metrics import references as R_
from improved_gan.metrics.suite import METRICS, canonical_name
from metric_helpers import fresh_caches, save_tiny_classifier  # noqa: F401 (an autouse fixture)
from run_checks import one_thread_env, torchrun_cmd

KEYS = (
    "classifier_score",
    "classifier_score_std",
    "classifier_fid",
    "classifier_kid",
    "classifier_kid_std",
    "classifier_precision",
    "classifier_recall",
)


@pytest.fixture
def tiny_classifier(tmp_path):
    return save_tiny_classifier(tmp_path / "c.pt")


def _numpy_score_and_fd(model, images_uint8: np.ndarray, ref: np.ndarray, splits: int):
    with torch.no_grad():
        logits, feats = model.forward_with_features(torch.from_numpy(images_uint8).float() / 255)
    p = logits.double().softmax(1).numpy()
    scores = [np.exp((q * (np.log(q) - np.log(q.mean(0)))).sum(1).mean()) for q in np.split(p, splits)]
    f = feats.double().numpy()
    s1, s2 = np.cov(f, rowvar=False), np.cov(ref, rowvar=False)
    fd = ((f.mean(0) - ref.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    return np.mean(scores), fd


def test_every_image_form_gives_the_numbers_of_unit_images_or_a_clear_error(tiny_classifier):
    """[0, 1], [-1, 1], [0, 255] (float or uint8), NCHW or NHWC: the same numbers (they were 8.25 / 6.60 / 5.89)."""
    path, model, ref = tiny_classifier
    g = torch.Generator().manual_seed(3)
    u8 = torch.randint(0, 256, (30, 1, 28, 28), dtype=torch.uint8, generator=g)
    unit = u8.float() / 255
    forms = {
        "unit": unit,
        "tanh": unit * 2 - 1,
        "float255": u8.float(),
        "uint8": u8,
        "nhwc": unit.permute(0, 2, 3, 1),
        "numpy nhw": unit[:, 0].numpy(),
    }
    names = ["classifier_score", "classifier_fid"]
    got = {
        k: compute_metrics(names, x, dataset="fmnist", classifier_path=path, splits=3)
        for k, x in forms.items()
    }
    score, fd = _numpy_score_and_fd(model, u8.numpy(), ref, 3)
    for k, out in got.items():
        assert out["classifier_score"] == pytest.approx(score, rel=1e-9), k
        assert out["classifier_fid"] == pytest.approx(fd, rel=1e-5), k
        assert out == got["unit"], k
    for bad, match in [
        (unit * 1.5, "ambiguous"),  # [0, 1.5]: an overshooting [0, 1] image or a dark [0, 255] one?
        (unit * 3 - 2, "fit no image range"),
        (unit.reshape(30, 784), r"images \(N, H, W\), \(N, C, H, W\) or \(N, H, W, C\)"),
        (torch.full((30, 1, 28, 28), float("nan")), "NaN"),
    ]:
        with pytest.raises(ValueError, match=match):
            compute_metrics(names, bad, dataset="fmnist", classifier_path=path, splits=3)
    with pytest.raises(ValueError, match="outside the range 0,1"):
        compute_metrics(names, unit * 2 - 1, dataset="fmnist", classifier_path=path, value_range="0,1")


def test_one_name_per_metric_with_the_old_names_as_aliases():
    assert (
        canonical_name("classifier_fd") == "classifier_fid"
    )  # score's old name; summaries use classifier_fid
    assert canonical_name("IS") == "inception_score" and canonical_name("precision_recall") == "pr"
    assert all(m.keys and m.meaning for m in METRICS.values())


def test_references_use_the_one_alias_table():
    assert R_.parse_reference("cifar-10-train") == ("cifar10", "train")
    assert (
        R_.parse_reference("fmnist-test")
        == R_.parse_reference("Fashion_MNIST-test")
        == ("fashion-mnist", "test")
    )
    assert R_.parse_reference("ring8") == ("ring8", None)
    with pytest.raises(Exception, match="fashion-mnist-test"):
        R_.parse_reference("imagenet-val")


def test_reference_features_are_cached_on_disk_and_a_corrupt_entry_is_rebuilt(
    tiny_classifier, monkeypatch, tmp_path
):
    import improved_gan.data

    path, model, _ = tiny_classifier
    g = torch.Generator().manual_seed(1)
    test = torch.randint(0, 256, (25, 1, 28, 28), dtype=torch.uint8, generator=g)
    monkeypatch.setattr(
        improved_gan.data, "load_dataset", lambda name, data_dir=None: SimpleNamespace(test_images=test)
    )
    calls = []
    real_outputs = features.classifier_outputs

    def counting(trained, images, **kw):
        calls.append(images.shape[0])
        return real_outputs(trained, images, **kw)

    monkeypatch.setattr(features, "classifier_outputs", counting)
    images = torch.rand(20, 1, 28, 28, generator=g)
    kw = dict(dataset="fmnist", classifier_path=path, kid_subsets=3)
    first = compute_metrics(["classifier_kid"], images, **kw)
    assert calls == [20, 25]  # the samples, then the test split
    with torch.no_grad():
        r = model.forward_with_features(test.float() / 255)[1].double().numpy()
    entries = list((tmp_path / "cache" / "references").glob("*.npz"))
    assert len(entries) == 1
    with np.load(entries[0]) as f:
        np.testing.assert_allclose(f["features"], r, rtol=1e-6)
    features.clear_cache()
    calls.clear()
    assert compute_metrics(["classifier_kid"], images, **kw) == first
    assert calls == [20]  # the split's features came from the disk
    for damage in (lambda b: b[: len(b) // 2], lambda b: b[:-300] + bytes(300)):  # truncated; zeroed tail
        entries[0].write_bytes(damage(entries[0].read_bytes()))
        calls.clear()
        with pytest.warns(R_.ReferenceCacheWarning, match="corrupt"):
            assert compute_metrics(["classifier_kid"], images, **kw) == first
        assert calls == [20, 25]  # rebuilt, not trusted
    # a valid npz whose array was changed: the checksum catches it
    with np.load(entries[0]) as f:
        meta, feats = f["meta"], f["features"]
    np.savez(entries[0], features=feats + 1e-3, meta=meta)
    calls.clear()
    with pytest.warns(R_.ReferenceCacheWarning):
        assert compute_metrics(["classifier_kid"], images, **kw) == first
    assert calls == [20, 25]


def test_a_data_set_split_as_the_samples_gets_its_probabilities_and_cached_features(
    tiny_classifier, monkeypatch
):
    """``score fashion-mnist-test``: a split as INPUT needs probabilities (not cached) and features (cached)."""
    import improved_gan.data
    from improved_gan.metrics.suite import compute

    path, model, ref = tiny_classifier
    test = torch.randint(
        0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(4)
    )
    monkeypatch.setattr(
        improved_gan.data, "load_dataset", lambda name, data_dir=None: SimpleNamespace(test_images=test)
    )
    for names in (["classifier_fid", "classifier_score"], ["classifier_score", "classifier_fid"]):
        out = compute(names, R_.load_split("fmnist-test"), classifier_path=path, splits=2).values
        score, fd = _numpy_score_and_fd(model, test.numpy(), ref, 2)
        assert out["classifier_score"] == pytest.approx(score, rel=1e-9)
        assert out["classifier_fid"] == pytest.approx(fd, rel=1e-5)


def test_training_evaluate_score_and_compute_metrics_give_identical_numbers(tmp_path, monkeypatch, capsys):
    from data_files import write_idx_dataset

    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(tmp_path / "empty"))  # the shipped classifier
    data = tmp_path / "data"
    write_idx_dataset(data, n_train=60, n_test=40, seed=2)
    run = tmp_path / "gan"
    n = "150"
    small = ["--set", "data.batch_size=8", "--set", "model.init_batch=16", "--set", f"train.eval_samples={n}"]
    argv = ["train", "fmnist-gan", "--data-dir", str(data), "--out", str(run), "--steps", "2", "--quiet"]
    assert main(argv + small) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    training = {k: rows[-1][k] for k in KEYS}

    assert (
        main(
            [
                "evaluate",
                str(run),
                "--data-dir",
                str(data),
                "--metrics",
                "classifier_score,classifier_fd,classifier_kid,classifier_pr",
            ]
        )
        == 0
    )
    evaluated = json.loads((run / "evaluation.json").read_text())

    npz = tmp_path / "s.npz"
    assert main(["sample", str(run), "--num", n, "--out", str(npz)]) == 0
    scored = {}
    for source in (npz, run):
        out = tmp_path / "r.json"
        argv = ["score", str(source), "--data-dir", str(data), "--out", str(out), "--num", n]
        assert main(argv) == 0
        scored[source] = json.loads(out.read_text())["values"]
    with np.load(npz) as f:
        x = f["x"]
    direct = compute_metrics(None, x, dataset="fashion-mnist", data_dir=data)
    capsys.readouterr()
    assert list(direct) == list(KEYS)
    for name, values in [
        ("training", training),
        ("evaluate", evaluated),
        ("score npz", scored[npz]),
        ("score run", scored[run]),
    ]:
        assert {k: values[k] for k in KEYS} == direct, name
    assert sorted(scored[npz]) == sorted(KEYS)  # the JSON file sorts its keys


SHARD_SCRIPT = r"""
import json, os, sys, warnings
from types import SimpleNamespace

import torch
import torch.distributed as dist

import improved_gan.data
from improved_gan.metrics import compute_metrics
from improved_gan.metrics.classifier import TrainedClassifier

dist.init_process_group("gloo")
rank = dist.get_rank()
path, out = sys.argv[1], sys.argv[2]
g = torch.Generator().manual_seed(7)
test = torch.randint(0, 256, (53, 1, 28, 28), dtype=torch.uint8, generator=g)
improved_gan.data.load_dataset = lambda name, data_dir=None: SimpleNamespace(test_images=test)
images = torch.rand(101, 1, 28, 28, generator=g)
rows = []
original = TrainedClassifier.outputs


def counting(self, x, **kw):
    rows.append(int(x.shape[0]))
    return original(self, x, **kw)


TrainedClassifier.outputs = counting
result = {}
for mode in ("full", "shard"):  # each with its own reference cache, so both extract the test split
    os.environ["IMPROVED_GAN_CACHE"] = f"{out}/cache-{mode}"
    rows.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = compute_metrics(
            None, images, dataset="fmnist", classifier_path=path, batch_size=16, kid_subsets=5, shard=mode == "shard"
        )
    result[mode] = {"values": values, "rows": sum(rows)}
with open(f"{out}/rank{rank}.json", "w") as f:
    json.dump(result, f)
dist.destroy_process_group()
"""


def test_sharded_feature_extraction_equals_one_process(tiny_classifier, tmp_path):
    """2 gloo processes under torchrun: each extracts its share (rows counted) and the gathered numbers equal
    one process's; without sharding each rank extracts all 101 samples and 53 reference images."""
    path = tiny_classifier[0]
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT)
    cmd = torchrun_cmd(str(script), str(path), str(tmp_path))
    proc = subprocess.run(cmd, env=one_thread_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert got[0]["full"]["rows"] == got[1]["full"]["rows"] == 101 + 53
    assert [got[0]["shard"]["rows"], got[1]["shard"]["rows"]] == [50 + 26, 51 + 27]  # rows [rN/W, (r+1)N/W)
    full = got[0]["full"]["values"]
    assert list(full) == list(KEYS)
    for rank in (0, 1):
        shard = got[rank]["shard"]["values"]
        assert list(shard) == list(full)
        for k, v in full.items():
            assert shard[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_the_api_page_lists_every_metric_with_its_aliases_parameters_and_keys():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5:
            name, *aliases = [w.strip("`(),") for w in cells[0].split()]
            params = () if cells[3] == "-" else tuple(p.strip() for p in cells[3].split(","))
            rows[name] = (tuple(aliases), cells[1], params, tuple(k.strip() for k in cells[4].split(",")))
    assert rows == {m.name: (m.aliases, m.space, m.params, m.keys) for m in METRICS.values()}


def test_inception_path_grey_to_rgb_default_train_reference_and_its_disk_cache(tmp_path, monkeypatch):
    """A random-init Inception (the weights are not shipped): the suite's numbers equal numpy formulas on the
    network's own outputs; the default reference of cifar10 is its train split, cached on disk."""
    import improved_gan.data
    from improved_gan.metrics.inception import InceptionScorer
    from improved_gan.metrics.inception_net import InceptionV3TF2015

    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    torch.save(InceptionV3TF2015().state_dict(), weights)
    g = torch.Generator().manual_seed(2)
    train = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=g)
    monkeypatch.setattr(
        improved_gan.data, "load_dataset", lambda name, data_dir=None: SimpleNamespace(train_images=train)
    )
    images = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8, generator=g)  # NHWC uint8
    kw = dict(dataset="cifar-10", inception_weights=weights, splits=2, kid_subsets=3)
    out = compute_metrics(["is", "kid", "pr"], images, **kw)
    assert list(out) == ["inception_score", "inception_score_std", "kid", "kid_std", "precision", "recall"]
    scorer = InceptionScorer(weights, backend="builtin")
    pool, logits = scorer.features_and_logits(images.permute(0, 3, 1, 2))
    ref_pool = scorer.features_and_logits(train)[0].double().numpy()
    p = logits.double().softmax(1).numpy()
    scores = [np.exp((q * (np.log(q) - np.log(q.mean(0)))).sum(1).mean()) for q in np.split(p, 2)]
    assert out["inception_score"] == pytest.approx(np.mean(scores), rel=1e-6)
    x = pool.double().numpy()
    state, kids = np.random.RandomState(2020), []
    for _ in range(3):  # subsets shrink to min(1000, 4, 4) = 4 rows
        a, b = x[state.choice(4, 4, replace=False)], ref_pool[state.choice(4, 4, replace=False)]
        kxx, kyy, kxy = ((u @ w.T / 2048 + 1) ** 3 for u, w in ((a, a), (b, b), (a, b)))
        kids.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / 12 - 2 * kxy.mean())
    assert out["kid"] == pytest.approx(np.mean(kids), rel=1e-5, abs=1e-9)
    assert len(list((tmp_path / "cache" / "references").glob("*.npz"))) == 1  # the cifar10-train features
    grey = compute_metrics(["is"], images[:2, ..., :1], **kw)  # grey images: repeated to 3 channels
    rgb = compute_metrics(["is"], images[:2, ..., :1].repeat(1, 1, 1, 3), **kw)
    assert grey == rgb
