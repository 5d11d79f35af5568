"""The lane matrix: every preset in fp32 and bf16, trained, checkpointed, resumed bit-exactly and evaluated.

Each lane goes through the command line only (``improved_gan.cli.main``, the function behind ``improved-gan``, in
this process; torchrun lanes as subprocesses) on tiny fake data files of each data set's published format
(``tests/data_files.py``), with small batches and few samples:

1. ``train PRESET --steps 4 --checkpoint-every 2 --eval-every 2 --set train.keep_every=2`` (the full run);
2. a copy of the run folder rolled back to its step-2 checkpoint (``last.pt`` replaced by ``step_0000002.pt``,
   ``summary.json`` removed: a run stopped after step 2), then ``resume``: its ``checkpoints/last.pt`` must equal
   the full run's tensor for tensor (dtypes included) and its ``metrics.jsonl`` rows must be the same;
3. ``evaluate`` of the full run: ``evaluation.json`` must repeat the final row of ``metrics.jsonl`` (the same
   state and seeds give the same metrics), and the checkpoint keeps float32 parameters in a bf16 run.

The default suite runs a representative slice (``DEFAULT_LANES``); ``-m slow`` runs every preset in both
precisions, the classifier presets and the rest of the two-process lanes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from data_files import write_cifar_bin_dataset, write_idx_dataset, write_svhn_dataset
from improved_gan.cli import main
from improved_gan.training.presets import CLASSIFIER_PRESETS, PRESETS, get_preset
from run_checks import assert_tensors_equal, metric_rows, one_thread_env, torchrun_cmd
from test_inception_net import _weights_file

STEPS, STOP = 4, 2
PRECISIONS = ("fp32", "bf16")
# The default suite's slice: minibatch discrimination + VBN + labels (fmnist-gan) in both precisions, the toy
# version under bf16 (median-init minibatch layer), batch norm in G under bf16. fmnist-ssl's fp32 and bf16 resumes
# are tests/test_cli_train.py's and tests/test_loop_speed.py's.
DEFAULT_LANES = {
    ("fmnist-gan", "bf16"),
    ("fmnist-gan", "fp32"),
    ("ring8-gan", "bf16"),
    ("fmnist-gan-vbn+bn", "bf16"),
    ("fmnist-ssl-fast", "fp32"),
}
# Two-process (gloo) lanes: VBN + minibatch discrimination, and semi-supervised; the first one is in the default
# suite (fmnist-ssl fp32 under torchrun is tests/test_distributed.py's).
TORCHRUN_LANES = [
    ("fmnist-gan", "bf16"),
    ("fmnist-gan", "fp32"),
    ("fmnist-ssl", "bf16"),
    ("ring8-gan", "fp32"),
    ("fmnist-ssl-fast", "fp32"),
    ("fmnist-ssl-fast", "bf16"),
]
DEFAULT_TORCHRUN = {("fmnist-gan", "bf16")}


def _gan_presets() -> list[str]:
    return [p for p in PRESETS if p not in CLASSIFIER_PRESETS]


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory) -> dict[str, Path]:
    """Fake data sets in their published formats: IDX (Fashion-MNIST, MNIST), CIFAR-10 binary, SVHN .mat."""
    root = tmp_path_factory.mktemp("lane-data")
    write_idx_dataset(root / "fashion-mnist", n_train=200, n_test=50, seed=5)
    write_idx_dataset(root / "mnist", n_train=200, n_test=50, seed=6)
    write_cifar_bin_dataset(root / "cifar10", n_per_batch=20, seed=7)
    write_svhn_dataset(root / "svhn", n_train=100, n_test=20, seed=8)
    return {name: root / name for name in ("fashion-mnist", "mnist", "cifar10", "svhn")}


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> Path:
    """A weights file of the 2015 Inception-v3's layout, randomly initialised (the real one is not needed)."""
    from improved_gan.metrics.inception import WEIGHTS_NAME
    from improved_gan.metrics.inception_net import InceptionV3TF2015

    path = tmp_path_factory.mktemp("inception") / WEIGHTS_NAME
    _weights_file(path, InceptionV3TF2015())
    return path


@pytest.fixture(autouse=True)
def _restore_threads():
    # the toy presets set one torch thread in the process that trains them (cli); put the setting back
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _small_settings(preset: str, precision: str) -> list[str]:
    """``--set`` options that shrink a preset to a few seconds per lane without changing its techniques."""
    cfg = get_preset(preset)
    sets = {
        "train.precision": precision,
        "train.keep_every": str(STOP),
        "train.sample_grid": "4",
        "data.batch_size": "10",
        "model.init_batch": "20",
        "train.eval_samples": "20",
    }
    if cfg.data.labels_per_class > 0:
        sets["data.labels_per_class"] = "2"
    if cfg.data.dataset in ("cifar10", "svhn"):
        sets["train.metrics"] = "none"  # their default metrics need the Inception weights file
    return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]


def _data_args(preset: str, data_dirs: dict[str, Path]) -> list[str]:
    dataset = get_preset(preset).data.dataset
    return ["--data-dir", str(data_dirs[dataset])] if dataset in data_dirs else []


def _roll_back(run: Path, part: Path, step: int) -> None:
    """``part``: a copy of ``run`` as a run stopped after ``step`` (its last checkpoint is the step's one)."""
    shutil.copytree(run, part)
    shutil.copyfile(part / "checkpoints" / f"step_{step:07d}.pt", part / "checkpoints" / "last.pt")
    (part / "summary.json").unlink()


def _check_evaluation(run: Path, *, expect_shared: bool = True) -> None:
    evaluation = json.loads((run / "evaluation.json").read_text())
    last = metric_rows(run)[-1]
    assert evaluation["step"] == last["step"] == STEPS
    shared = [k for k in evaluation if k in last and k != "step"]
    assert shared or not expect_shared, (evaluation, last)  # at least one metric to compare
    for key in shared:
        if last[key] is None:  # e.g. mode_kl when no sample is near a mode
            assert evaluation[key] is None, key
        else:
            assert evaluation[key] == pytest.approx(last[key], rel=1e-9, abs=1e-12), key


def _lane_params():
    for preset in _gan_presets():
        for precision in PRECISIONS:
            marks = () if (preset, precision) in DEFAULT_LANES else (pytest.mark.slow,)
            yield pytest.param(preset, precision, marks=marks, id=f"{preset}-{precision}")


@pytest.mark.parametrize("preset, precision", list(_lane_params()))
def test_lane_trains_checkpoints_resumes_bit_exactly_and_evaluates(
    preset, precision, data_dirs, tmp_path, request, monkeypatch
):
    _single_process_lane(preset, precision, data_dirs, tmp_path, request, monkeypatch)


def _single_process_lane(preset, precision, data_dirs, tmp_path, request, monkeypatch, sets=()):
    """The lane of the module doc in this process; ``sets``: more ``--set KEY=VALUE`` options for the run."""
    data = _data_args(preset, data_dirs)
    common = [*data, "--quiet", *_small_settings(preset, precision)]
    common += [arg for kv in sets for arg in ("--set", kv)]
    schedule = ["--steps", str(STEPS), "--checkpoint-every", str(STOP), "--eval-every", str(STOP)]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", preset, "--out", str(full), *schedule, *common]) == 0
    cfg = json.loads((full / "config.json").read_text())
    assert cfg["train"]["precision"] == precision
    assert [r["step"] for r in metric_rows(full)] == [STOP, STEPS]

    _roll_back(full, part, STOP)
    assert main(["resume", str(part), *data, "--quiet"]) == 0
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == STEPS
    assert_tensors_equal(a, b)
    assert metric_rows(full) == metric_rows(part)
    # bf16 is an autocast of the forward passes: parameters (and so the checkpoint) stay float32
    for net in ("G", "D"):
        floats = [t.dtype for t in a[net].values() if t.is_floating_point()]
        assert floats and set(floats) == {torch.float32}, (net, set(floats))

    evaluate = ["evaluate", str(full), *data]
    cfg = get_preset(preset)
    if cfg.kind == "gan" and cfg.data.dataset in ("cifar10", "svhn"):
        # trained with train.metrics=none, yet `evaluate` computes the data set's default metrics (Inception):
        # a random weights file (through the environment variable: --inception-weights would set it for good in
        # this process) and the fewest samples the score's 10 splits take
        monkeypatch.setenv(
            "IMPROVED_GAN_INCEPTION_WEIGHTS", str(request.getfixturevalue("inception_weights"))
        )
        evaluate += ["--metrics", "inception_score", "--num-samples", "10"]
    assert main(evaluate) == 0
    # an unlabelled CIFAR-10 run trained without metrics has no metric in metrics.jsonl to compare with
    _check_evaluation(full, expect_shared="--metrics" not in evaluate or cfg.loss.use_labels)
    if "--metrics" in evaluate:
        assert (
            json.loads((full / "evaluation.json").read_text())["inception_score"] >= 1.0
        )  # exp(mean KL >= 0)


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(CLASSIFIER_PRESETS))
def test_classifier_preset_trains_deterministically(preset, data_dirs, tmp_path):
    # a classifier preset has no checkpoints, resume, evaluate or precision: its lane is train, twice, same file
    dataset = CLASSIFIER_PRESETS[preset][0]
    args = ["--data-dir", str(data_dirs[dataset]), "--steps", "3", "--quiet"]
    args += ["--set", "batch_size=16", "--set", "width=4", "--set", "feature_dim=8"]
    outs = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for out in outs:
        assert main(["train", preset, "--out", str(out), *args]) == 0
    first, second = (torch.load(p, weights_only=True) for p in outs)
    for saved in (first, second):
        saved["metadata"].pop("train_seconds")  # the clock
    assert_tensors_equal(first, second)


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = torchrun_cmd("-m", "improved_gan", *args)
    return subprocess.run(cmd, cwd=cwd, env=one_thread_env(), capture_output=True, text=True, timeout=900)


def _torchrun_params():
    for preset, precision in TORCHRUN_LANES:
        marks = () if (preset, precision) in DEFAULT_TORCHRUN else (pytest.mark.slow,)
        yield pytest.param(preset, precision, marks=marks, id=f"{preset}-{precision}")


@pytest.mark.parametrize("preset, precision", list(_torchrun_params()))
def test_two_process_lane_resumes_bit_exactly_and_evaluates(preset, precision, data_dirs, tmp_path):
    _two_process_lane(preset, precision, data_dirs, tmp_path)


def _two_process_lane(preset, precision, data_dirs, tmp_path, sets=()):
    """The lane of the module doc under torchrun (2 gloo processes); ``sets`` as for :func:`_single_process_lane`."""
    data = _data_args(preset, data_dirs)
    common = [*data, "--quiet", *_small_settings(preset, precision)]
    common += [arg for kv in sets for arg in ("--set", kv)]
    schedule = ["--steps", str(STEPS), "--checkpoint-every", str(STOP), "--eval-every", str(STOP)]
    full, part = tmp_path / "full", tmp_path / "part"
    p = _torchrun("train", preset, "--out", str(full), *schedule, *common, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    cfg = json.loads((full / "config.json").read_text())
    assert cfg["run"]["world_size"] == 2 and cfg["train"]["precision"] == precision
    assert [r["step"] for r in metric_rows(full)] == [STOP, STEPS]  # written once, by rank 0
    ckpt = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]["torch"]) == 2  # both ranks' generator states

    _roll_back(full, part, STOP)
    p = _torchrun("resume", str(part), *data, "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert_tensors_equal(ckpt, torch.load(part / "checkpoints" / "last.pt", weights_only=True))
    assert metric_rows(full) == metric_rows(part)

    assert main(["evaluate", str(full), *data]) == 0  # a two-process run evaluates in one process
    evaluation = json.loads((full / "evaluation.json").read_text())
    values = [v for k, v in evaluation.items() if k not in ("step", "num_samples")]
    assert evaluation["step"] == STEPS and values
    # a metric that cannot be computed is null (mode_kl when no sample is near a mode)
    assert all(v is None or isinstance(v, (int, float)) for v in values)
    assert any(v is not None for v in values)


# optim.eps_inside_from=0.5 on a reference_adam preset: eps moves inside the root at step 3 of the lane's 4, so the
# resume from step 2 crosses the switch; fp32 in one process in the default suite, the rest in the slow set
EPS_SWITCH = ("optim.eps_inside_from=0.5",)


@pytest.mark.parametrize(
    "precision", ["fp32", pytest.param("bf16", marks=pytest.mark.slow)], ids=["fp32", "bf16"]
)
def test_eps_switch_lane(precision, data_dirs, tmp_path, request, monkeypatch):
    _single_process_lane("fmnist-ssl", precision, data_dirs, tmp_path, request, monkeypatch, EPS_SWITCH)
    assert json.loads((tmp_path / "full" / "config.json").read_text())["optim"]["eps_inside_from"] == 0.5


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_eps_switch_two_process_lane(precision, data_dirs, tmp_path):
    _two_process_lane("fmnist-ssl", precision, data_dirs, tmp_path, EPS_SWITCH)
    assert json.loads((tmp_path / "full" / "config.json").read_text())["optim"]["eps_inside_from"] == 0.5
