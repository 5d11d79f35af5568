"""The training step's speed options: bf16 autocast, device-side loss accounting, the time-budget schedule."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from data_files import write_idx_dataset
from improved_gan.cli import main
from improved_gan.errors import ConfigError
from improved_gan.training.config import override
from improved_gan.training.presets import get_preset
from improved_gan.training.trainer import Trainer
from run_checks import assert_tensors_equal, metric_rows
from test_presets_run import fake_data

SMALL = ["data.batch_size=4", "model.init_batch=8", "data.labels_per_class=2"]


def _trainer(*sets: str) -> Trainer:
    cfg = override(get_preset("fmnist-ssl"), [*SMALL, *sets])
    return Trainer(cfg, fake_data("fashion-mnist"))


class _MatmulDtypes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.dtypes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in ("mm", "addmm"):
            self.dtypes.add(args[-1].dtype)
        return func(*args, **(kwargs or {}))


def test_precision_option_is_validated():
    with pytest.raises(ConfigError, match="train.precision"):
        override(get_preset("fmnist-ssl"), ["train.precision=fp16"])


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_sets_the_dtype_of_the_matrix_products_and_keeps_parameters_fp32(precision, dtype):
    t = _trainer(f"train.precision={precision}")
    mode = _MatmulDtypes()
    with mode:
        losses = t.train_step()
    assert mode.dtypes == {dtype}
    assert all(math.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in [*t.G.parameters(), *t.D.parameters()])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_from_a_state_dict_is_bit_identical(precision):
    full = _trainer(f"train.precision={precision}")
    for _ in range(6):
        full.train_step()
    part = _trainer(f"train.precision={precision}")
    for _ in range(3):
        part.train_step()
    buf = io.BytesIO()
    torch.save(part.state_dict(), buf)
    buf.seek(0)
    resumed = _trainer(f"train.precision={precision}")
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    for _ in range(3):
        resumed.train_step()
    assert_tensors_equal(full.state_dict(), resumed.state_dict())
    assert full.pop_mean_losses() == resumed.pop_mean_losses()


def test_bf16_cli_run_resumes_bit_identically(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_idx_dataset(data, n_train=200, n_test=50, seed=3)
    args = ["--data-dir", str(data), "--set", "data.batch_size=20", "--set", "model.init_batch=40", "--quiet"]
    args += ["--set", "train.precision=bf16", "--steps", "6", "--checkpoint-every", "3", "--eval-every", "2"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", "fmnist-ssl", "--out", str(full), *args]) == 0
    from improved_gan.training import trainer

    original = trainer.Trainer.train_step

    def crashing(self):
        if self.step == 4:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(trainer.Trainer, "train_step", crashing)
    assert main(["train", "fmnist-ssl", "--out", str(part), *args]) == 130
    monkeypatch.setattr(trainer.Trainer, "train_step", original)
    assert main(["resume", str(part), "--data-dir", str(data), "--quiet"]) == 0
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "last.pt", weights_only=True)
    assert_tensors_equal(a, b)
    assert metric_rows(full) == metric_rows(part)


def test_device_side_loss_sums_equal_the_per_step_floats():
    host = _trainer()  # (each Trainer seeds the global generator that drives D's noise: one at a time)
    steps = [host.train_step() for _ in range(5)]
    host_means = host.pop_mean_losses()
    dev = _trainer()
    dev.device_losses = True  # the CUDA path, exercised on the CPU
    for _ in range(5):
        out = dev.train_step()
        assert isinstance(out["loss_d"], torch.Tensor)
    # the means written at an evaluation: the mean of the floats each step returned, computed here
    expected = {k: sum(s[k] for s in steps) / 5 for k in steps[0]}
    got = dev.pop_mean_losses()
    assert list(got) == list(host_means) == ["loss_d", "loss_g", "lr", "loss_unl", "loss_lab"]
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-6)
    assert dev.loss_count == 0 and dev.pop_mean_losses() == {}


def test_device_side_sums_survive_a_checkpoint_between_evaluations():
    def run(save_between: bool) -> dict:
        t = _trainer()
        t.device_losses = True
        for _ in range(3):
            t.train_step()
        if save_between:
            state = t.state_dict()  # flushes the device sums into floats
            assert state["loss_count"] == 3
            assert set(state["loss_sums"]) == {"loss_d", "loss_g", "lr", "loss_unl", "loss_lab"}
        t.train_step()
        return t.pop_mean_losses()

    assert run(True) == pytest.approx(run(False), rel=1e-12)


@pytest.mark.parametrize("device_losses", [False, True])
def test_divergence_reports_the_first_non_finite_step(device_losses):
    t = _trainer()
    t.device_losses = device_losses
    for _ in range(2):
        t.train_step()
    assert t.divergence() is None
    with torch.no_grad():
        t.D.out.bias.fill_(float("nan"))  # every logit NaN from the next step on
    t.train_step()
    t.train_step()
    step, name, value = t.divergence()
    # step 3 is the first update whose losses are NaN; loss_d is the first loss in the record's order
    assert (step, name) == (3, "loss_d") and math.isnan(value)


def test_time_budget_progress_anneals_the_learning_rate_over_the_budget():
    t = _trainer("optim.decay_start=0.5", "train.steps=1000")
    lr = t.cfg.optim.lr
    t.step = 100
    assert t._lr() == lr  # 10 % of the steps, no budget
    t.time_budget_seconds, t.wall_seconds = 60.0, 45.0  # 75 % of the budget spent
    assert t.progress() == pytest.approx(0.75)
    assert t._lr() == pytest.approx(lr * (1 - 0.75) / (1 - 0.5))
    t.wall_seconds = 61.0
    assert t._lr() == 0.0
    t.time_budget_seconds, t.step = None, 900
    assert t._lr() == pytest.approx(lr * 0.1 / 0.5)


def test_reference_adam_does_not_import_the_compiler():
    code = (
        "import sys, torch\n"
        "from improved_gan.optim import ReferenceAdam\n"
        "p = torch.nn.Parameter(torch.ones(3))\n"
        "opt = ReferenceAdam([p], lr=0.1)\n"
        "p.grad = torch.ones(3); opt.step(); opt.zero_grad(); opt.load_state_dict(opt.state_dict())\n"
        "assert 'torch._dynamo' not in sys.modules\n"
        "import torch._dynamo\n"  # once the compiler is loaded, PyTorch's own (decorated) methods are used
        "p.grad = torch.ones(3); opt.step(); opt.zero_grad(); state = opt.state_dict()\n"
        "assert p.grad is None and state['state'][0]['step'] == 2\n"
        "print(p.tolist())\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # two steps of ReferenceAdam with a constant gradient 1 (beta1 0.9, beta2 0.999, eps 1e-8), by hand:
    # m_hat = v_hat = 1 at every step, so each step moves by lr / sqrt(1 + eps)
    expected = 1.0 - 2 * 0.1 / math.sqrt(1.0 + 1e-8)
    assert [float(x) for x in out.strip().strip("[]").split(",")] == pytest.approx([expected] * 3, rel=1e-6)


class _HostReads(TorchDispatchMode):
    """Records every read of a tensor's value by the host: ``aten._local_scalar_dense`` is what ``.item()``,
    ``bool()``, ``float()``, ``int()`` and indexing with a 0-dim tensor run. ``host_side`` are tensors that stay
    on the CPU on a GPU too (the optimizer's step counters, the historical average's count): reading them
    waits for nothing."""

    def __init__(self, host_side: set[int]):
        super().__init__()
        self.host_side, self.reads = host_side, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and id(args[0]) not in self.host_side:
            self.reads.append(f"{func} on {tuple(args[0].shape)} {args[0].dtype}")
        if func is torch.ops.aten._to_copy.default and (kwargs or {}).get("device") == torch.device("cpu"):
            if args[0].device.type != "cpu":
                self.reads.append(f"{func} to the CPU")
        return func(*args, **(kwargs or {}))


def _host_side_tensors(t: Trainer) -> set[int]:
    out = {id(s["step"]) for opt in (t.opt_d, t.opt_g) for s in opt.state.values() if "step" in s}
    return out | {id(ha.count) for ha in (t.ha_d, t.ha_g) if ha is not None}


@pytest.mark.parametrize(
    "preset, sets",
    [
        ("fmnist-ssl", SMALL),  # joint D pass, feature matching, reference Adam
        ("fmnist-gan+ha", ["data.batch_size=4", "model.init_batch=8"]),  # VBN, minibatch features, HA, Adam
    ],
)
def test_the_device_loss_step_reads_nothing_back_to_the_host(preset, sets, monkeypatch):
    t = Trainer(override(get_preset(preset), sets), fake_data("fashion-mnist"))
    t.device_losses = True  # the CUDA accounting, on the CPU
    t.train_step()  # the optimizers' state exists from here on
    # tolist / cpu / numpy do not dispatch on a CPU tensor: record their calls directly
    explicit: list[str] = []
    for name in ("tolist", "cpu", "numpy", "item"):
        original = getattr(torch.Tensor, name)

        def wrapped(self, *a, __name=name, __original=original, **k):
            explicit.append(__name)
            return __original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    mode = _HostReads(_host_side_tensors(t))
    with mode:
        for _ in range(3):
            out = t.train_step()
    monkeypatch.undo()
    assert mode.reads == [] and [e for e in explicit if e != "item"] == []
    assert all(isinstance(v, torch.Tensor) for k, v in out.items() if k != "lr")
    # and the record still finds a NaN, once read at an evaluation
    with torch.no_grad():
        t.D.out.bias.fill_(float("nan"))
    with mode:
        t.train_step()
    assert mode.reads == []
    assert t.divergence()[:2] == (5, "loss_d")


def test_the_host_loss_step_reads_each_loss_once():
    """The CPU accounting reads the step's losses (that is its point): the spy above does see reads."""
    t = _trainer()
    t.train_step()
    mode = _HostReads(_host_side_tensors(t))
    with mode:
        t.train_step()
    assert len(mode.reads) == 4  # loss_d, loss_g, loss_unl, loss_lab
