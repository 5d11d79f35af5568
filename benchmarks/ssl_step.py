"""Training throughput of the ``fmnist-ssl`` step: our ``Trainer.train_step`` against a straightforward loop.

Usage: ``python benchmarks/ssl_step.py [--steps N] [--repeats R] [--json PATH] [--profile] [--no-variants]``.

What is compared (one process, the same threads, the same networks and the same initial parameters):

- ``ours``: :meth:`improved_gan.training.trainer.Trainer.train_step` of the ``fmnist-ssl`` preset (one joint D
  pass over labelled + unlabelled + generated, generated without gradient, D frozen in the G step, real
  features without gradient, ReferenceAdam, evaluation EMA update).
- ``plain``: the loop most public PyTorch ports of the paper's MNIST script use, written here: a
  ``DataLoader`` (shuffle, batch 100) over a ``TensorDataset`` for each of labelled / unlabelled / second
  unlabelled, three separate D passes with the fake batch generated WITH gradient then ``.detach()``ed,
  ``torch.optim.Adam``, and a G step that forwards real and fake through D with autograd on everywhere (D's
  weight gradients are computed and then thrown away by ``zero_grad``). Same losses, same deep-copied G and D.
- speed ideas for the library, measured as variants of ``ours`` (monkeypatched instances, library untouched):
  ``ours+wn_out`` scales the OUTPUT of each weight-normalised dense layer, ``(x v^T) * g/||v|| + b`` (the
  reference code's form) instead of materialising ``w = g v/||v||``; ``ours+foreach_adam`` runs
  ReferenceAdam's update with ``torch._foreach_*`` ops; ``ours+noise_one_pass`` adds D's Gaussian noise in
  one ``torch.add(x, eps, alpha=sigma)``; ``ours+all3`` does the three. ``--bf16`` adds our step
  under bfloat16 autocast, which changes the numerics (a probe of what the matmuls could gain, not a fix).

Timing: warm-up, then ``R`` blocks; in each block every runner times ``N`` consecutive steps, the order
rotating from block to block. Reported: the median over blocks of steps/s, unlabelled examples/s (one step
consumes ``batch_size`` = 100 unlabelled examples for D) and the ratio to ``plain``.

FLOP counting rule (only matrix products; element-wise work, weight normalisation, noise and the optimizer are
not counted): a dense layer ``in -> out`` costs ``2 in out`` per example in a forward pass; its backward costs
``2 in out`` per example for the weight gradient when its weight needs one, plus ``2 in out`` for the input
gradient when its input needs one (so backward is ~2x forward for a layer that needs both). The analytic
count is checked against ``torch.utils.flop_counter.FlopCounterMode`` on one real step of each loop. Achieved
FLOP/s is compared with the best float32 ``torch.mm`` rate of 1024^2 and 2048^2 matrices on the same threads;
``ratio_ceiling_at_peak`` is the ratio to ``plain`` that ours would reach if its matrix products ran at that
peak and nothing else took time (an upper bound for any float32 optimisation of our step).

When ours is below the target ratio, the step is profiled (``torch.profiler``, top ops by self CPU time and the
shares of matmul, random numbers, optimizer and the rest), and the parts the speed ideas change are timed
alone, interleaved, which resolves differences of a few percent that whole-step timings under load cannot.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import interleaved_medians, machine_info, write_json  # noqa: E402
from improved_gan.nn import GaussianNoise, WeightNormLinear  # noqa: E402
from improved_gan.optim import ReferenceAdam  # noqa: E402
from improved_gan.training.presets import get_preset  # noqa: E402
from improved_gan.training.run import load_train_data  # noqa: E402
from improved_gan.training.trainer import Trainer  # noqa: E402

TARGET_RATIO = 3.0
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "ssl_step.json"


# ---------------------------------------------------------------------------------- the straightforward loop
class PlainLoop:
    """The usual port: DataLoaders, three D passes, fake made with gradient, G step with full autograd.

    ``trainer`` supplies the configuration, the initialised networks (deep-copied) and the data: anything with
    ``cfg``, ``G``, ``D``, ``data.train_x``, ``data.train_y`` and ``lab_idx`` (None: every example labelled).
    ``batch_size`` defaults to ``cfg.data.batch_size``. The data stays on the CPU in the
    DataLoaders and each batch is copied to ``device`` (as a straightforward script does); ``bf16`` runs the
    forward passes under bfloat16 autocast. Every step reads its two losses back (``.item()``).
    """

    def __init__(
        self,
        trainer,
        *,
        device: str = "cpu",
        bf16: bool = False,
        batch_size: int | None = None,
        channels_last: bool = False,
    ) -> None:
        cfg = trainer.cfg
        self.device = torch.device(device)
        self.bf16 = bf16
        self.channels_last = channels_last  # image batches copied to the device in NHWC memory order
        self.bs, self.z_dim = batch_size or cfg.data.batch_size, trainer.G.z_dim
        self.G = copy.deepcopy(trainer.G).to(self.device)  # same init as ours
        self.D = copy.deepcopy(trainer.D).to(self.device)
        oc = cfg.optim
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=oc.lr, betas=(oc.beta1, oc.beta2))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=oc.lr, betas=(oc.beta1, oc.beta2))
        x, y = trainer.data.train_x.cpu(), trainer.data.train_y.cpu()
        lab = trainer.lab_idx if trainer.lab_idx is not None else torch.arange(x.shape[0])
        kw = dict(batch_size=self.bs, shuffle=True, drop_last=True)
        self.loaders = {
            "lab": DataLoader(TensorDataset(x[lab], y[lab]), **kw),
            "unl": DataLoader(TensorDataset(x), **kw),
            "unl2": DataLoader(TensorDataset(x), **kw),
        }
        self.iters: dict[str, object] = {}
        self.w_unl = cfg.loss.unsupervised_weight
        self.l1 = cfg.loss.feature_distance == "l1"

    def _next(self, name: str):
        try:
            batch = next(self.iters[name])
        except (KeyError, StopIteration):
            self.iters[name] = iter(self.loaders[name])
            batch = next(self.iters[name])
        out = [t.to(self.device) for t in batch]
        if self.channels_last:
            out = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in out]
        return out

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def train_step(self) -> dict[str, float]:
        self.G.train()
        self.D.train()
        x_lab, y_lab = self._next("lab")  # (B, 1, 28, 28), (B,)
        (x_unl,) = self._next("unl")
        (x_unl2,) = self._next("unl2")
        with self._autocast():
            x_fake = self.G(
                torch.rand(self.bs, self.z_dim, device=self.device)
            )  # with gradient, detached below
            l_lab = self.D(x_lab)[0].float()  # (B, K)
            l_unl = self.D(x_unl)[0].float()
            l_fake = self.D(x_fake.detach())[0].float()
        loss_lab = F.cross_entropy(l_lab, y_lab)
        lse_unl, lse_fake = torch.logsumexp(l_unl, 1), torch.logsumexp(l_fake, 1)  # (B,)
        loss_unl = F.softplus(-lse_unl).mean() + F.softplus(lse_fake).mean()
        loss_d = loss_lab + self.w_unl * loss_unl
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()

        with self._autocast():
            f_fake = self.D(self.G(torch.rand(self.bs, self.z_dim, device=self.device)))[1].float()  # (B, F)
            f_real = self.D(x_unl2)[1].float()
        diff = f_real.flatten(1).mean(0) - f_fake.flatten(1).mean(0)
        loss_g = diff.abs().mean() if self.l1 else diff.square().mean()
        self.opt_g.zero_grad()
        self.opt_d.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}


# --------------------------------------------------------------------------------------------- speed variants
def _wn_linear_output_scaled(self: WeightNormLinear, x: torch.Tensor) -> torch.Tensor:
    scale = self.g / torch.linalg.vector_norm(self.v, dim=1)  # (out,)
    t = F.linear(x, self.v)  # (N, out)
    return t * scale if self.bias is None else torch.addcmul(self.bias, t, scale)  # (N, out)


def patch_output_scaled_weight_norm(*nets: nn.Module) -> None:
    """Give every WeightNormLinear of ``nets`` the output-scaled forward (checked against the original)."""
    for net in nets:
        layers = [m for m in net.modules() if isinstance(m, WeightNormLinear)]
        xs = [torch.rand(7, m.in_features) for m in layers]
        before = [m(x) for m, x in zip(layers, xs)]
        for m in layers:
            m.forward = types.MethodType(_wn_linear_output_scaled, m)
        for m, x, y in zip(layers, xs, before):
            torch.testing.assert_close(m(x), y, rtol=1e-4, atol=1e-5)


class ForeachReferenceAdam(ReferenceAdam):
    """ReferenceAdam's update with ``torch._foreach_*`` ops and the bias corrections folded into scalars.

    ``sqrt(v / c2 + eps) = sqrt(v + eps c2) / sqrt(c2)`` with ``c_i = 1 - beta_i^t``, so
    ``p -= lr sqrt(c2) / c1 * m / sqrt(v + eps c2)``: the same update without the per-step tensor ``v / c2``.
    """

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                st = self.state[p]
                if not st:
                    st.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                st["step"] += 1
            t = self.state[params[0]]["step"]  # every parameter gets a gradient at every step here
            c1, c2 = 1.0 - beta1**t, 1.0 - beta2**t
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            grads = [p.grad for p in params]
            torch._foreach_lerp_(m, grads, 1.0 - beta1)  # m = beta1 m + (1 - beta1) g
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, value=1.0 - beta2)
            denom = torch._foreach_add(v, group["eps"] * c2)
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, m, denom, value=-group["lr"] * c2**0.5 / c1)


def check_foreach_adam() -> None:
    """Three steps of both optimizers on the same parameters and gradients give the same parameters."""
    gen = torch.Generator().manual_seed(0)
    p0, grads = torch.randn(50, generator=gen), [torch.randn(50, generator=gen) for _ in range(3)]
    a, b = nn.Parameter(p0.clone()), nn.Parameter(p0.clone())
    kw = dict(lr=0.003, betas=(0.5, 0.999), eps=1e-8)
    opt_a, opt_b = ReferenceAdam([a], **kw), ForeachReferenceAdam([b], **kw)
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    torch.testing.assert_close(b, a)


def patch_foreach_adam(trainer: Trainer) -> None:
    oc = trainer.cfg.optim
    kw = dict(lr=oc.lr, betas=(oc.beta1, oc.beta2), eps=oc.eps)
    trainer.opt_d = ForeachReferenceAdam(trainer.D.parameters(), **kw)
    trainer.opt_g = ForeachReferenceAdam(trainer.G.parameters(), **kw)


def _noise_one_pass(self: GaussianNoise, x: torch.Tensor) -> torch.Tensor:
    return torch.add(x, torch.randn_like(x), alpha=self.sigma)  # (*) one pass instead of a mul and an add


def patch_noise_one_pass(net: nn.Module) -> None:
    """Gaussian noise as ``torch.add(x, eps, alpha=sigma)`` (training mode only: the benchmark never evaluates)."""
    for m in net.modules():
        if isinstance(m, GaussianNoise):
            m.forward = types.MethodType(_noise_one_pass, m)


def bf16_step(trainer: Trainer):
    """``train_step`` under CPU autocast to bfloat16 (CHANGES the numerics: a speed probe, not a fix)."""

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return trainer.train_step()

    return step


VARIANTS = {  # name -> patch of a fresh Trainer; float32 numerics (up to rounding)
    "ours+wn_out": lambda t: patch_output_scaled_weight_norm(t.G, t.D),
    "ours+foreach_adam": lambda t: patch_foreach_adam(t),
    "ours+noise_one_pass": lambda t: patch_noise_one_pass(t.D),
    "ours+all3": lambda t: (
        patch_output_scaled_weight_norm(t.G, t.D),
        patch_foreach_adam(t),
        patch_noise_one_pass(t.D),
    ),
}


def component_times(trainer: Trainer, repeats: int) -> dict[str, dict[str, float]]:
    """Milliseconds of the parts each speed idea changes, original vs idea, interleaved (robust to load).

    ``d_pass``: the D step's pass, forward and backward of D on 300 examples (the G step's two D passes gain
    too, so this underestimates the saving); ``optimizer``: both optimizer steps of one training step (random
    gradients on copies of the parameters).
    """
    x = trainer.data.train_x[:300]  # (300, 1, 28, 28)
    nets = {name: copy.deepcopy(trainer.D).train() for name in ("original", "wn_out", "noise_one_pass")}
    patch_output_scaled_weight_norm(nets["wn_out"])
    patch_noise_one_pass(nets["noise_one_pass"])
    fns = {
        f"d_pass/{k}": (lambda D=D: torch.logsumexp(D(x)[0], 1).mean().backward()) for k, D in nets.items()
    }
    oc = trainer.cfg.optim
    kw = dict(lr=oc.lr, betas=(oc.beta1, oc.beta2), eps=oc.eps)
    for name, cls in (("original", ReferenceAdam), ("foreach_adam", ForeachReferenceAdam)):
        G, D = copy.deepcopy(trainer.G), copy.deepcopy(trainer.D)
        for p in [*G.parameters(), *D.parameters()]:
            p.grad = torch.randn_like(p) if p.requires_grad else None
        opts = (cls(D.parameters(), **kw), cls(G.parameters(), **kw))
        fns[f"optimizer/{name}"] = lambda opts=opts: [o.step() for o in opts]
    medians = interleaved_medians(fns, repeats, torch.device("cpu"))
    out: dict[str, dict[str, float]] = {}
    for key, sec in medians.items():
        part, name = key.split("/")
        out.setdefault(part, {})[name] = sec * 1e3
    return out


# -------------------------------------------------------------------------------------------- FLOPs and peak
def dense_layers(net: nn.Module) -> list[tuple[int, int]]:
    """``(in, out)`` of the dense layers of ``net`` in forward order."""
    return [
        (m.in_features, m.out_features) for m in net.modules() if isinstance(m, (WeightNormLinear, nn.Linear))
    ]


def analytic_flops(G: nn.Module, D: nn.Module, bs: int) -> dict[str, int]:
    """FLOPs of one step of each loop under the module docstring's rule (D's last layer gives the logits)."""
    g, d = dense_layers(G), dense_layers(D)

    def mm(layers, n):  # one forward (or one gradient) through `layers` for n examples
        return sum(2 * i * o * n for i, o in layers)

    d_step = mm(g, bs) + mm(d, 3 * bs) + mm(d, 3 * bs) + mm(d[1:], 3 * bs)  # G fwd; D fwd; w-grads; x-grads
    g_bwd = mm(g, bs) + mm(g[1:], bs)  # G weight grads, input grads (z needs none)
    ours_g = mm(g, bs) + 2 * mm(d, bs) + mm(d[:-1], bs) + g_bwd  # D frozen: input grads on the fake path
    plain_g = mm(g, bs) + 2 * mm(d, bs) + 2 * mm(d[:-1], bs) + mm(d[:-1], bs) + mm(d[1:-1], bs) + g_bwd
    return {"ours": d_step + ours_g, "plain": d_step + plain_g}


def counted_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def matmul_peak(sizes=(1024, 2048), reps: int = 5) -> dict[str, float]:
    """Best float32 ``torch.mm`` FLOP/s per size, on the current threads."""
    out = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        out[str(n)] = 2 * n**3 / best
    return out


# ------------------------------------------------------------------------------------------------ timing
def interleaved(runners: dict, *, steps: int, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per block of ``steps`` steps for each runner; the order of the runners rotates every block."""
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for b in range(repeats):
        order = names[b % len(names) :] + names[: b % len(names)]
        for name in order:
            t0 = time.perf_counter()
            for _ in range(steps):
                runners[name]()
            times[name].append(time.perf_counter() - t0)
    return times


_MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm")
_RANDOM_OPS = ("aten::normal_", "aten::uniform_", "aten::random_")


def profile_step(step, steps: int, rows: int = 15) -> dict:
    """Top ops of ``step`` by self CPU time; shares of matmul, random numbers, optimizer and the rest."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    by_op = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in by_op)
    share = {
        "matmul": sum(e.self_cpu_time_total for e in by_op if e.key in _MATMUL_OPS) / total,
        "random_numbers": sum(e.self_cpu_time_total for e in by_op if e.key in _RANDOM_OPS) / total,
        "optimizer_step": sum(e.cpu_time_total for e in by_op if e.key.startswith("Optimizer.step#")) / total,
    }
    share["other"] = 1.0 - sum(share.values())
    events = prof.key_averages(group_by_input_shape=True)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    rows_out = [
        {
            "op": e.key,
            "shapes": str(e.input_shapes)[:80],
            "calls": e.count // steps,
            "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
            "share": e.self_cpu_time_total / total,
        }
        for e in top
    ]
    return {"ms_per_step": total / 1e3 / steps, "shares": share, "top": rows_out}


def measure(args: argparse.Namespace) -> dict:
    cfg = get_preset("fmnist-ssl")
    bs = cfg.data.batch_size
    data, _ = load_train_data(cfg, data_dir=args.data_dir, device="cpu")
    ours = Trainer(cfg, data)
    plain = PlainLoop(ours)
    runners = {"ours": ours.train_step, "plain": plain.train_step}
    if not args.no_variants:
        check_foreach_adam()
        for name, patch in VARIANTS.items():
            t = Trainer(cfg, data)
            patch(t)
            runners[name] = t.train_step
        if args.bf16:
            runners["ours+bf16_autocast"] = bf16_step(Trainer(cfg, data))

    machine = machine_info(torch.device("cpu"))
    flops = analytic_flops(ours.G, ours.D, bs)
    counted = {"ours": counted_flops(ours.train_step), "plain": counted_flops(plain.train_step)}
    times = interleaved(runners, steps=args.steps, repeats=args.repeats, warmup=args.warmup)
    peak = matmul_peak()
    machine["load_average_end"] = list(os.getloadavg())

    rates = {name: [args.steps / t for t in ts] for name, ts in times.items()}
    base = statistics.median(rates["plain"])
    runners_out = {}
    for name, r in rates.items():
        sps = statistics.median(r)
        row = {
            "steps_per_s": sps,
            "examples_per_s": sps * bs,
            "ratio_to_plain": sps / base,
            "steps_per_s_min_max": [min(r), max(r)],
        }
        if name in flops:
            row.update(flops_per_step=flops[name], flops_counted=counted[name], flop_per_s=flops[name] * sps)
        runners_out[name] = row
    best_peak = max(peak.values())
    ours_row = runners_out["ours"]
    result = {
        "machine": machine,
        "preset": cfg.preset,
        "batch_size": bs,
        "steps_per_block": args.steps,
        "blocks": args.repeats,
        "block_seconds": times,
        "runners": runners_out,
        "matmul_peak_flop_per_s": peak,
        "ours_fraction_of_peak": ours_row["flop_per_s"] / best_peak,
        # the ratio ours would reach if its matmuls ran at the measured peak and nothing else cost time
        "ratio_ceiling_at_peak": best_peak / flops["ours"] / base,
        "target_ratio": TARGET_RATIO,
        "target_met": ours_row["ratio_to_plain"] >= TARGET_RATIO,
    }
    if not args.no_variants:
        result["components_ms"] = component_times(ours, repeats=args.component_repeats)
    if args.profile or not result["target_met"]:
        result["profile_ours"] = profile_step(ours.train_step, steps=5)
    return result


def print_report(result: dict) -> None:
    m = result["machine"]
    print(
        f"fmnist-ssl step, batch {result['batch_size']}, {m['torch_threads']} thread(s), {m['cpu']}, "
        f"load average {m['load_average_1_5_15_min'][0]:.1f} -> {m['load_average_end'][0]:.1f}"
    )
    print(f"{'runner':<20}{'steps/s':>9}{'examples/s':>12}{'x plain':>9}{'GFLOP/step':>12}{'GFLOP/s':>9}")
    for name, r in result["runners"].items():
        gf = f"{r['flops_per_step'] / 1e9:>12.3f}{r['flop_per_s'] / 1e9:>9.1f}" if "flop_per_s" in r else ""
        print(
            f"{name:<20}{r['steps_per_s']:>9.2f}{r['examples_per_s']:>12.0f}{r['ratio_to_plain']:>9.2f}{gf}"
        )
    counted = {k: result["runners"][k]["flops_counted"] / 1e9 for k in ("ours", "plain")}
    print(f"FlopCounterMode: ours {counted['ours']:.3f}, plain {counted['plain']:.3f} GFLOP/step")
    peaks = ", ".join(f"{k}^2 {v / 1e9:.1f}" for k, v in result["matmul_peak_flop_per_s"].items())
    print(
        f"matmul peak GFLOP/s: {peaks}; ours reaches {100 * result['ours_fraction_of_peak']:.0f}% of the best"
    )
    print(f"ceiling: ours at matmul peak, no overhead: {result['ratio_ceiling_at_peak']:.2f}x plain")
    print(f"target ours >= {result['target_ratio']}x plain: {'met' if result['target_met'] else 'NOT met'}")
    if "components_ms" in result:
        step_ms = 1e3 / result["runners"]["ours"]["steps_per_s"]
        print(f"\ncomponents (median ms, interleaved); saving as a share of our step ({step_ms:.0f} ms):")
        for part, times in result["components_ms"].items():
            base = times["original"]
            for name, ms in times.items():
                gain = (
                    ""
                    if name == "original"
                    else f"  saves {base - ms:6.2f} ms = {100 * (base - ms) / step_ms:4.1f}%"
                )
                print(f"  {part:<10}{name:<16}{ms:8.2f} ms{gain}")
    if "profile_ours" in result:
        prof = result["profile_ours"]
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in prof["shares"].items())
        print(f"\nprofile of our step ({prof['ms_per_step']:.1f} ms/step under the profiler): {shares}")
        print(f"{'op':<24}{'input shapes':<40}{'calls':>6}{'ms/step':>9}{'share':>7}")
        for r in prof["top"]:
            print(
                f"{r['op'][:24]:<24}{r['shapes'][:40]:<40}{r['calls']:>6}{r['ms_per_step']:>9.2f}"
                f"{100 * r['share']:>6.1f}%"
            )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks per runner")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--profile", action="store_true", help="profile our step even when the target is met")
    ap.add_argument("--no-variants", action="store_true", help="skip the speed-idea variants of our step")
    ap.add_argument("--bf16", action="store_true", help="also time our step under bfloat16 autocast")
    ap.add_argument("--component-repeats", type=int, default=30, help="rounds of the component timings")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(args)
    print_report(result)
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
