"""The CPU-side parts of ``benchmarks/gpu_check.sh``: the fake data writer, the counting and projection
arithmetic, the JSON schema and table, the adapter to the trainer, and (slow) the whole script on the CPU."""

from __future__ import annotations

import copy
import gzip
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmarks import gpu_pieces as P
from benchmarks.fake_data import write_fake_cifar, write_fake_data, write_fake_idx
from torch import nn

from improved_gan.data import load_dataset

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------- fake data
def test_fake_cifar_is_read_by_the_library_as_cifar10(tmp_path):
    write_fake_cifar(tmp_path, per_batch=30, test=20)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert tuple(ds.train_images.shape) == (150, 3, 32, 32) and tuple(ds.test_images.shape) == (20, 3, 32, 32)
    assert ds.train_images.dtype == torch.uint8
    np.testing.assert_array_equal(ds.train_labels[:30].numpy(), np.arange(30) % 10)  # labels cycle 0..9
    raw = (tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin").read_bytes()
    assert len(raw) == 30 * 3073
    first = np.frombuffer(raw[1:3073], dtype=np.uint8).reshape(3, 32, 32)  # the record read by hand
    np.testing.assert_array_equal(ds.train_images[0].numpy(), first)


def test_fake_idx_has_the_idx_header_and_is_read_as_fashion_mnist(tmp_path):
    write_fake_idx(tmp_path, n_train=50, n_test=20)
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    assert raw[:4] == bytes([0, 0, 8, 3]) and struct.unpack(">3I", raw[4:16]) == (50, 28, 28)
    assert len(raw) == 16 + 50 * 28 * 28
    labels = gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert labels[:4] == bytes([0, 0, 8, 1]) and struct.unpack(">I", labels[4:8]) == (20,)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert tuple(ds.train_images.shape) == (50, 1, 28, 28) and tuple(ds.test_images.shape) == (20, 1, 28, 28)
    np.testing.assert_array_equal(ds.test_labels.numpy(), np.arange(20) % 10)
    first = np.frombuffer(raw[16 : 16 + 784], dtype=np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(ds.train_images[0, 0].numpy(), first)


def test_write_fake_data_small_lays_out_both_data_dirs(tmp_path):
    dirs = write_fake_data(tmp_path, small=True)
    assert load_dataset("fashion-mnist", data_dir=dirs["fashion-mnist"]).train_images.shape[0] == 600
    assert load_dataset("cifar10", data_dir=dirs["cifar10"]).train_images.shape[0] == 500


# ------------------------------------------------------------------------------------------------- arithmetic
def test_projection_counts_steps_evaluations_and_checkpoints():
    # cifar10-ssl's schedule: 600,000 steps, both cadences 500: 1,200 evaluations and 1,200 checkpoints
    hours = P.project_hours(
        steps=600_000, step_seconds=0.002, eval_every=500, eval_seconds=1.0, checkpoint_every=500,
        checkpoint_seconds=0.5, startup_seconds=30.0,
    )  # fmt: skip
    assert hours == pytest.approx((600_000 * 0.002 + 1200 * 1.0 + 1200 * 0.5 + 30.0) / 3600)
    # not a multiple: the loop also evaluates and saves at the final step (1001: at 500, 1000 and 1001)
    hours = P.project_hours(
        steps=1001, step_seconds=0.0, eval_every=500, eval_seconds=10.0, checkpoint_every=1000,
        checkpoint_seconds=100.0,
    )  # fmt: skip
    assert hours == pytest.approx((3 * 10.0 + 2 * 100.0) / 3600)
    with pytest.raises(ValueError):
        P.project_hours(
            steps=10, step_seconds=1, eval_every=0, eval_seconds=0, checkpoint_every=1, checkpoint_seconds=0
        )


def test_flops_of_a_linear_and_a_conv_match_the_closed_forms():
    n, i, o = 8, 16, 12
    lin = nn.Linear(i, o)
    x = torch.randn(n, i)
    # forward 2 n i o; backward: the weight gradient only (x needs none), another 2 n i o
    assert P.count_flops(lambda: lin(x).sum().backward()) == 4 * n * i * o
    conv = nn.Conv2d(3, 5, kernel_size=3, padding=1)
    img = torch.randn(2, 3, 6, 7)
    with torch.no_grad():
        assert (
            P.count_flops(lambda: conv(img)) == 2 * 2 * 5 * 6 * 7 * 3 * 3 * 3
        )  # 2 N Cout Hout Wout Cin kh kw


def test_bytes_of_an_elementwise_op_are_its_inputs_and_output():
    a, b = torch.randn(1000), torch.randn(1000)
    nbytes, ops = P.count_bytes(lambda: torch.add(a, b))
    assert (nbytes, ops) == (3 * 1000 * 4, 1)
    nbytes, ops = P.count_bytes(lambda: a.view(10, 100).t())  # views move nothing
    assert (nbytes, ops) == (0, 0)


def test_time_steps_runs_warmup_plus_the_timed_steps():
    calls = []
    seconds = P.time_steps(lambda: calls.append(1), torch.device("cpu"), steps=7, warmup=2)
    assert len(calls) == 9 and seconds > 0


def test_best_seconds_is_the_best_block_mean():
    calls = []
    seconds = P.best_seconds(lambda: calls.append(1), torch.device("cpu"), calls=4, blocks=3)
    assert len(calls) == 1 + 4 * 3 and seconds > 0  # one warm-up call, then the blocks


# -------------------------------------------------------------------------------------------- schema and table
def _variant(**over) -> dict:
    v = {k: 1.0 for k in P.REQUIRED_VARIANT}
    v.update(no_sync=True, steps_timed=50)
    v.update(over)
    return v


def _result(**variant_over) -> dict:
    return {
        "schema": P.SCHEMA,
        "device": "cuda",
        "small": False,
        "machine": {"gpu": "test"},
        "peaks": {"bf16_flops": 1e15, "tf32_flops": 5e14, "fp32_flops": 5e13, "copy_bytes_per_s": 3e12},
        "presets": {"cifar10-ssl": {"variants": {"as-is": _variant(**variant_over), "bf16": _variant()}}},
        "two_process": {"backend": "gloo", "device": "cuda:0", "steps_per_s": 10.0, "global_batch": 100},
        "checkpoint_to_cpu": {"written_on": "cuda:0", "generator_equal": True},
        "null_reasons": {},
    }


def test_schema_accepts_a_complete_result_and_names_what_is_wrong():
    assert P.validate_result(_result()) == []
    bad = _result(kernels_per_step=None)
    assert P.validate_result(bad) == [
        "presets.cifar10-ssl.variants.as-is.kernels_per_step is null without a reason"
    ]
    bad["null_reasons"]["presets.cifar10-ssl.variants.as-is.kernels_per_step"] = "needs CUDA"
    assert P.validate_result(bad) == []
    assert P.validate_result(_result(no_sync_error=None)) == []  # "no error" is null by design
    missing = _result()
    del missing["presets"]["cifar10-ssl"]["variants"]["bf16"]["projected_hours"]
    del missing["two_process"]
    assert P.validate_result(missing) == [
        "missing two_process",
        "missing presets.cifar10-ssl.variants.bf16.projected_hours",
    ]
    assert P.validate_result({**_result(), "schema": "x"}) == [f"schema is 'x', expected {P.SCHEMA!r}"]


def test_table_has_a_column_per_variant_and_a_row_per_measure():
    result = _result(
        step_ms=2.5, fraction_of_roofline=0.5, peak_memory_bytes=3 * 2**30, kernels_per_step=None
    )
    lines = P.format_table(result).splitlines()
    assert lines[0].split() == ["measure", "cifar10-ssl/as-is", "cifar10-ssl/bf16"]
    body = {line[:26].strip(): line[26:].split() for line in lines[2 : 2 + len(P.TABLE_ROWS)]}
    assert body["ms/step"][:2] == ["2.5", "ms"]
    assert body["of roofline"][0] == "50.0%"
    assert body["peak memory"][:2] == ["3.00", "GiB"]
    assert body["GPU kernels/step"][0] == "n/a"
    assert any("gloo on cuda:0" in line for line in lines)


def test_a_failing_part_is_recorded_with_its_reason_and_the_rest_goes_on():
    from benchmarks.gpu_check import Failures

    result = _result()
    failures = Failures(result)

    def broken():
        raise RuntimeError("NCCL error: duplicate GPU\nmore detail")

    result["two_process"] = failures.attempt("two_process", broken)
    assert failures.attempt("checkpoint_to_cpu", lambda: {"generator_equal": True}) == {
        "generator_equal": True
    }
    assert result["two_process"] is None
    assert result["failures"] == ["two_process: RuntimeError: NCCL error: duplicate GPU"]
    assert result["null_reasons"]["two_process"] == "failed: RuntimeError: NCCL error: duplicate GPU"
    assert P.validate_result(result) == []  # the null has its reason
    assert "n/a" in P.format_table(result).splitlines()[-2]  # the 2-process row


# ------------------------------------------------------------------------------------ the adapter, on the CPU
SMALL = ("data.batch_size=10", "model.init_batch=20")


def test_adapter_plain_loop_and_checkpoint_to_cpu(tmp_path):
    dirs = write_fake_data(tmp_path / "data", small=True)
    h = P.build_step("fmnist-ssl", data_dir=dirs["fashion-mnist"], device="cpu", sets=SMALL)
    assert h.cfg.data.batch_size == 10 and h.lab_idx.shape == (100,)
    g0 = copy.deepcopy(h.G.state_dict())
    losses = h.step()
    assert h.trainer.step == 1 and all(math.isfinite(losses[k]) for k in ("loss_d", "loss_g"))
    assert any(not torch.equal(g0[k], v) for k, v in h.G.state_dict().items())  # the step trained G
    plain = P.PlainStep(h, "cpu")
    out = plain()
    assert set(out) == {"loss_d", "loss_g"} and all(math.isfinite(v) for v in out.values())
    acc = h.evaluate()
    assert 0.0 <= acc["test_accuracy"] <= 1.0 and 0.0 <= acc["test_accuracy_raw"] <= 1.0
    res = P.checkpoint_to_cpu(h, "fmnist-ssl", str(dirs["fashion-mnist"]), SMALL, tmp_path / "ck")
    assert res["tensor_devices_after_load"] == ["cpu"] and res["generator_equal"]
    assert (res["step_loaded"], res["step_after"], res["losses_finite"]) == (1, 3, True)
    assert (tmp_path / "ck" / "generator.pt").is_file()


# ------------------------------------------------------------------------------------------ the whole script
@pytest.mark.slow
def test_gpu_check_script_runs_every_part_on_the_cpu(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "SMALL": "1", "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert P.validate_result(result) == []
    assert list(tmp_path.joinpath("out").iterdir()) == [tmp_path / "out" / "gpu_check.json"]  # ONE file
    assert set(result["presets"]) == {"cifar10-ssl", "fmnist-ssl"}
    for block in result["presets"].values():
        assert set(block["variants"]) == {"as-is", "tf32", "bf16"}
        for v in block["variants"].values():
            assert v["steps_per_s"] > 0 and v["flops_per_step"] > 0 and v["projected_hours"] > 0
            assert v["kernels_per_step"] is None and v["no_sync"] is None  # CUDA only, with reasons
    reasons = result["null_reasons"]
    assert reasons["presets.fmnist-ssl.variants.bf16.no_sync"].startswith("needs CUDA")
    # fmnist-ssl at the same batch: identical FLOPs in every variant (bf16 changes the type, not the count)
    flops = {v["flops_per_step"] for v in result["presets"]["fmnist-ssl"]["variants"].values()}
    assert len(flops) == 1
    assert result["two_process"]["params_identical"] and result["two_process"]["global_batch"] == 20
    assert result["checkpoint_to_cpu"]["generator_equal"]
    table = proc.stdout.strip().splitlines()
    assert table[0].split()[0] == "measure" and len(table[0].split()) == 7  # one table: 6 columns of numbers
