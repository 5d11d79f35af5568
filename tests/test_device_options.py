"""GPU options applied from plain arguments (training/device_options.py), checked on the CPU."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from improved_gan.errors import StorageError
from improved_gan.training import device_options as DO


@pytest.fixture
def restore_options():
    saved = DO.current_device_options()
    yield
    DO.restore_device_options(saved)


def test_apply_sets_every_flag_and_returns_the_previous_ones(restore_options):
    DO.apply_device_options(tf32=False, cudnn_benchmark=False)
    before = DO.current_device_options()
    prev = DO.apply_device_options(tf32=True, cudnn_benchmark=True)
    assert prev == before
    assert torch.backends.cuda.matmul.allow_tf32 is True
    assert torch.get_float32_matmul_precision() == "high"
    assert torch.backends.cudnn.allow_tf32 is True
    assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.deterministic is False
    DO.apply_device_options(tf32=False, cudnn_benchmark=False, deterministic=True)
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.benchmark is False
    assert torch.backends.cudnn.deterministic is True
    DO.restore_device_options(prev)
    assert DO.current_device_options() == before


def test_deterministic_with_the_autotuner_is_refused(restore_options):
    before = DO.current_device_options()
    with pytest.raises(ValueError, match="deterministic"):
        DO.apply_device_options(cudnn_benchmark=True, deterministic=True)
    assert DO.current_device_options() == before  # nothing changed


class _ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def test_channels_last_changes_strides_not_values():
    torch.manual_seed(0)
    net = _ConvNet()
    x = torch.randn(2, 3, 5, 6)
    ref = net(x)
    weight_before = net.conv.weight.detach().clone()
    assert DO.to_channels_last(net) is net
    w = net.conv.weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    torch.testing.assert_close(w.detach(), weight_before, rtol=0, atol=0)
    assert net.fc.weight.is_contiguous()  # 2-D parameters untouched
    xc = DO.to_channels_last(x)
    # NHWC order, strides listed for (N, C, H, W): N is H*W*C, C is 1, H is W*C, W is C
    assert xc.stride() == (5 * 6 * 3, 1, 6 * 3, 3) and torch.equal(xc, x)
    torch.testing.assert_close(net(xc), ref, rtol=1e-5, atol=1e-6)
    v = torch.randn(4, 5)
    assert DO.to_channels_last(v) is v


def test_channels_last_leaves_an_mlp_alone():
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    strides = [p.stride() for p in mlp.parameters()]
    assert DO.to_channels_last(mlp) is mlp and [p.stride() for p in mlp.parameters()] == strides
    with pytest.raises(TypeError, match="module or a tensor"):
        DO.to_channels_last([1, 2])


# ------------------------------------------------------------------------------------------ async checkpoints
def _state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"step": seed, "w": torch.randn(4, 3, generator=g), "nested": [{"b": torch.arange(5)}]}


def test_snapshot_is_a_copy_taken_at_submit_time():
    state = _state(1)
    snap, wait = DO.snapshot_to_cpu(state)
    wait()
    expected = state["w"].clone()
    state["w"].add_(1.0)  # training goes on changing the original in place
    state["nested"][0]["b"].zero_()
    torch.testing.assert_close(snap["w"], expected, rtol=0, atol=0)
    assert snap["nested"][0]["b"].tolist() == [0, 1, 2, 3, 4] and snap["step"] == 1


def test_async_writer_writes_loadable_verified_files(tmp_path):
    state = _state(3)
    with DO.AsyncCheckpointWriter() as writer:
        writer.submit(state, tmp_path / "last.pt", tmp_path / "keep" / "step_3.pt")
        state["w"].mul_(0)  # after submit: must not reach the file
        writer.wait()
        assert writer.written == [tmp_path / "last.pt", tmp_path / "keep" / "step_3.pt"]
    for path in writer.written:
        got = torch.load(path, map_location="cpu", weights_only=True)
        assert got["step"] == 3 and torch.equal(got["w"], _state(3)["w"])
    assert (tmp_path / "last.pt").read_bytes() == (tmp_path / "keep" / "step_3.pt").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_the_training_thread_does_not_wait_for_the_write(tmp_path):
    release = threading.Event()

    def slow_serialize(state):
        release.wait(10)
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    writer = DO.AsyncCheckpointWriter(serialize=slow_serialize)
    writer.submit(_state(1), tmp_path / "a.pt")  # returns while the thread is blocked in serialize
    assert not (tmp_path / "a.pt").exists()
    release.set()
    writer.close()
    assert torch.load(tmp_path / "a.pt", weights_only=True)["step"] == 1


def test_a_failed_write_is_raised_once_on_the_next_call_and_keeps_the_good_file(tmp_path):
    target = tmp_path / "last.pt"
    writer = DO.AsyncCheckpointWriter()
    writer.submit(_state(1), target)
    writer.wait()
    good = target.read_bytes()
    writer.submit({"bad": object()}, target)  # not serialisable with weights_only
    with pytest.raises(Exception) as info:
        writer.submit(_state(2), target)  # the error of the previous write surfaces here
    assert not isinstance(info.value, AssertionError)
    assert target.read_bytes() == good  # the good checkpoint survives
    writer.submit(_state(2), target)  # reported once: the writer goes on
    writer.close()
    assert torch.load(target, weights_only=True)["step"] == 2


def test_a_verification_mismatch_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    DO.write_verified(target, b"good bytes")
    from improved_gan.training import checkpoint

    real = checkpoint._read_back
    monkeypatch.setattr(
        checkpoint, "_read_back", lambda p: real(p)[:-1] + b"X"
    )  # a disk that corrupts the last byte
    writer = DO.AsyncCheckpointWriter()
    writer.submit(_state(1), target)
    with pytest.raises(StorageError, match="last.pt.*differ"):
        writer.wait()
    writer.close()
    assert target.read_bytes() == b"good bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left


def test_write_verified_bytes_and_mode(tmp_path):
    data = os.urandom(1000)
    DO.write_verified(tmp_path / "sub" / "f.bin", data)
    assert hashlib.sha256((tmp_path / "sub" / "f.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "sub" / "f.bin").stat().st_mode & 0o777 == 0o666 & ~mask


def test_write_verified_storage_error_names_the_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match=str(blocker / "f.pt")):
        DO.write_verified(blocker / "f.pt", b"data")  # parent is a file


def test_close_raises_a_pending_error_and_refuses_later_submits(tmp_path):
    writer = DO.AsyncCheckpointWriter()
    writer.submit({"bad": object()}, tmp_path / "x.pt")
    with pytest.raises(Exception) as info:
        writer.close()
    assert not isinstance(info.value, AssertionError)
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(_state(1), tmp_path / "y.pt")
    writer.close()  # twice is fine
    assert not Path(tmp_path / "x.pt").exists()


def test_submit_group_writes_each_state_with_its_serializer_in_one_job(tmp_path):
    def tagged(state):
        buf = io.BytesIO()
        torch.save({"format": "generator", **state}, buf)
        return buf.getvalue()

    with DO.AsyncCheckpointWriter() as writer:
        writer.submit_group(
            [
                (_state(1), (tmp_path / "last.pt", tmp_path / "step_1.pt"), None),
                (_state(2), (tmp_path / "g.pt",), tagged),
            ]
        )
    assert writer.written == [tmp_path / "last.pt", tmp_path / "step_1.pt", tmp_path / "g.pt"]
    assert torch.load(tmp_path / "step_1.pt", weights_only=True)["step"] == 1
    g = torch.load(tmp_path / "g.pt", weights_only=True)
    assert g["format"] == "generator" and g["step"] == 2
    with pytest.raises(ValueError, match="path"):
        DO.AsyncCheckpointWriter().submit_group([(_state(1), (), None)])
