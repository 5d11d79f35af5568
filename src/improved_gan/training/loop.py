"""The GAN training loop: one discriminator step then one generator step, with evaluation and checkpoints.

One step (paper §5; openai/improved-gan ``train_*_feature_matching.py``):

1. Discriminator: a labelled batch (when labels are used), an unlabelled batch and a generated batch. The generator
   runs without gradient here. If the discriminator has no batch-coupled layer the three batches run as ONE forward
   pass (per-example noise makes it the same computation); with minibatch discrimination or batch norm they run
   separately, as the paper requires (real and generated statistics must not mix).
2. Generator: a second, independently drawn unlabelled batch. With feature matching, the real features are computed
   without gradient, and the discriminator's parameters are frozen so backward computes no weight gradients of D.
   The discriminator's noise stays on in this pass (train mode), as in the reference code.
3. The evaluation EMA of D and the historical averages (paper §3.3) are updated after the optimizer steps.

All randomness comes from generators whose states are saved in the checkpoint (the global torch RNG drives the
noise layers), so a resumed run is bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch

from improved_gan.data import EpochBatcher, labeled_subset
from improved_gan.errors import CheckpointError, ConfigError
from improved_gan.nn import data_dependent_init, virtual_batch_reference
from improved_gan.optim import make_optimizer
from improved_gan.regularizers import HistoricalAveraging
from improved_gan.training import distributed as D_
from improved_gan.training.config import Config
from improved_gan.training.ema import EMA
from improved_gan.training.experiment import build_losses, build_networks, is_batch_coupled, uses_vbn


@dataclass
class TrainData:
    """What the loop needs of a data set, already on the device and normalised.

    For image sets: ``train_x (N, C, H, W)``, ``train_y (N,)``, ``test_x``, ``test_y``. For toy 2-D sets, ``toy`` is
    the mixture (``sample(n, generator)``) and the tensors are None.
    """

    name: str
    image_shape: tuple[int, ...]
    num_classes: int
    train_x: torch.Tensor | None = None
    train_y: torch.Tensor | None = None
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    toy: Any = None


def _seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across runs and platforms)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return h


def _compiled(module: torch.nn.Module, mode: str) -> Any:
    """``module`` itself for ``mode="off"``, else ``torch.compile(module, mode=...)`` ("default" is torch's default
    mode; "reduce-overhead" also records CUDA graphs on a GPU). The compiled wrapper shares the parameters."""
    if mode == "off":
        return module
    return torch.compile(module, mode=None if mode == "default" else mode, dynamic=False)


class Trainer:
    """Owns the networks, optimizers and training state of one run (one rank, under torchrun)."""

    def __init__(self, cfg: Config, data: TrainData, *, device: str = "cpu", dist: D_.DistInfo | None = None):
        self.cfg = cfg
        self.data = data
        self.device = torch.device(device)
        self.dist = dist or D_.DistInfo()
        bs = cfg.data.batch_size

        # Parameters and the data-dependent init come from the run seed alone: identical on every rank.
        torch.manual_seed(_seed(cfg.seed, 0))
        self.G, self.D = build_networks(cfg, image_shape=data.image_shape, num_classes=data.num_classes)
        self.G.to(self.device)
        self.D.to(self.device)
        self.objectives = build_losses(cfg)
        self.joint_d_pass = not is_batch_coupled(self.D)
        self.vbn = uses_vbn(self.G)

        init_gen = torch.Generator().manual_seed(_seed(cfg.seed, 1))
        ref_gen = torch.Generator().manual_seed(_seed(cfg.seed, 2))
        self.z_ref = self.G.sample_z(bs, generator=ref_gen).to(
            self.device
        )  # VBN reference batch (paper §3.5)
        if data.toy is not None:
            x_init = data.toy.sample(cfg.model.init_batch, generator=init_gen).to(self.device)
        else:
            idx = torch.randperm(data.train_x.shape[0], generator=init_gen)[: cfg.model.init_batch]
            x_init = data.train_x[idx.to(data.train_x.device)]
        z_init = self.G.sample_z(cfg.model.init_batch, generator=init_gen).to(self.device)
        with torch.no_grad():
            if self.vbn:
                with virtual_batch_reference(self.G):
                    self.G(self.z_ref)
            if cfg.model.data_init:  # else g = 1 and bias = 0 in every weight-normalised layer
                data_dependent_init(self.G, z_init)
                data_dependent_init(self.D, x_init)
        D_.broadcast_module(self.G, self.dist)
        D_.broadcast_module(self.D, self.dist)

        oc = cfg.optim
        self.opt_d = make_optimizer(
            oc.name, self.D.parameters(), lr=oc.lr, betas=(oc.beta1, oc.beta2), eps=oc.eps
        )
        self.opt_g = make_optimizer(
            oc.name, self.G.parameters(), lr=oc.lr, betas=(oc.beta1, oc.beta2), eps=oc.eps
        )
        self.ema = EMA(self.D, decay=cfg.train.ema_decay).to(self.device)
        self.D_eval = copy.deepcopy(self.D)
        ha = cfg.loss.historical_averaging
        self.ha_d = HistoricalAveraging(self.D).to(self.device) if ha > 0 else None
        self.ha_g = HistoricalAveraging(self.G).to(self.device) if ha > 0 else None

        # Data order: disjoint shards per rank, the same permutations on every rank.
        r, w = self.dist.rank, self.dist.world_size
        self.lab_idx = None
        if cfg.loss.use_labels and data.toy is None:
            self.lab_idx = self._labeled_indices(data.train_y.cpu())
            self.lab_batcher = EpochBatcher(
                len(self.lab_idx), bs, seed=_seed(cfg.seed, 10), rank=r, world_size=w
            )
        if data.toy is None:
            n = data.train_x.shape[0]
            self.unl_batcher = EpochBatcher(n, bs, seed=_seed(cfg.seed, 11), rank=r, world_size=w)
            self.unl2_batcher = EpochBatcher(n, bs, seed=_seed(cfg.seed, 12), rank=r, world_size=w)
        # Per-rank random streams: z, toy data, and the global RNG that drives noise/dropout layers.
        self.z_gen = torch.Generator().manual_seed(_seed(cfg.seed, 20, r))
        self.toy_gen = torch.Generator().manual_seed(_seed(cfg.seed, 21, r))
        torch.manual_seed(_seed(cfg.seed, 22, r))
        self.step = 0
        self.wall_seconds = 0.0
        # Sums of the step losses since the last evaluation (part of the state, so resumed logs match exactly).
        self.loss_sums: dict[str, float] = {}
        self.loss_count = 0
        # first step whose losses were not finite: (step, loss name, value); see divergence()
        self._diverged: tuple[int, str, float] | None = None
        self._dev_sums: torch.Tensor | None = None  # CUDA: loss sums on the device (see _record_losses)
        self._dev_names: tuple[str, ...] = ()
        self._dev_bad: torch.Tensor | None = None  # CUDA: (step, loss index, value) of the first bad step
        self._dev_bad_names: tuple[str, ...] = ()
        self._lr_sum = 0.0
        self._last_lr: float | None = None
        self._d_trainable = [p for p in self.D.parameters() if p.requires_grad]
        self.bf16 = cfg.train.precision == "bf16"
        # the step's forward passes, optionally through torch.compile (README, "Precision, compilation and time
        # budgets"); self.G and self.D stay the plain modules (state dicts, evaluation)
        self._g, self._d = _compiled(self.G, cfg.train.compile), _compiled(self.D, cfg.train.compile)
        # losses stay on the device (no per-step read) on CUDA; the CPU reads them each step (cheap there)
        self.device_losses = self.device.type == "cuda"
        # seconds of a time budget, if the run has one: the learning-rate schedule then anneals over it
        self.time_budget_seconds: float | None = None

    def _labeled_indices(self, labels: torch.Tensor) -> torch.Tensor:
        """The labelled subset (balanced, seeded as in the reference code), or every example for ``-1``."""
        per_class = self.cfg.data.labels_per_class
        if per_class == -1:
            return torch.arange(labels.shape[0])
        try:
            return labeled_subset(labels, per_class, self.cfg.data.label_seed)
        except ValueError as exc:
            raise ConfigError(
                f"data.labels_per_class={per_class}: {exc} in {self.data.name}'s training set"
            ) from None

    # ------------------------------------------------------------------------------------------------ batches
    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A CPU tensor on the training device; on CUDA through pinned memory without blocking the host."""
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _real_batch(self, batcher) -> torch.Tensor:
        bs = self.cfg.data.batch_size
        if self.data.toy is not None:
            return self._to_device(self.data.toy.sample(bs, generator=self.toy_gen))
        idx = batcher.next_indices()
        if self.data.train_x.device.type == "cuda":
            idx = self._to_device(idx)
        return self.data.train_x[idx].to(self.device)

    def _labeled_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.lab_idx[self.lab_batcher.next_indices()]
        if self.data.train_x.device.type == "cuda":
            idx = self._to_device(idx)
        return self.data.train_x[idx].to(self.device), self.data.train_y[idx].to(self.device)

    def _z(self, n: int) -> torch.Tensor:
        # drawn on the CPU generator (the same z on every device, saved in the checkpoint), copied without a sync
        return self._to_device(self.G.sample_z(n, generator=self.z_gen, device="cpu"))

    def progress(self) -> float:
        """Fraction of the run done, in [0, 1]: ``step / train.steps``, or with a time budget
        (:attr:`time_budget_seconds`) the larger of that and ``wall_seconds / budget``, so that a learning-rate
        decay anneals over the steps the budget allows at the measured step rate (README, "Precision, compilation
        and time budgets")."""
        frac = self.step / self.cfg.train.steps
        if self.time_budget_seconds:
            frac = max(frac, self.wall_seconds / self.time_budget_seconds)
        return min(frac, 1.0)

    def _lr(self) -> float:
        oc = self.cfg.optim
        if oc.decay_start >= 1.0:
            return oc.lr
        return oc.lr * min(1.0, max(0.0, (1.0 - self.progress()) / (1.0 - oc.decay_start)))

    def _autocast(self):
        """bfloat16 autocast of the forward passes for ``train.precision="bf16"``: matrix products in bfloat16,
        float32 accumulation and parameters (README, "Precision, compilation and time budgets")."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # --------------------------------------------------------------------------------------------------- step
    def train_step(self) -> dict[str, Any]:
        """One discriminator update and one generator update; returns the step's losses and ``lr``.

        On the CPU the losses are Python floats. On CUDA they are 0-dim device tensors (reading them would
        wait for the GPU): the step makes no host synchronisation; the sums for :meth:`pop_mean_losses` and
        the divergence check stay on the device until read.
        """
        cfg, bs = self.cfg, self.cfg.data.batch_size
        lr = self._lr()
        if lr != self._last_lr:
            for opt in (self.opt_d, self.opt_g):
                for group in opt.param_groups:
                    group["lr"] = lr
            self._last_lr = lr
        use_labels = self.lab_idx is not None
        self.G.train()
        self.D.train()

        # ---- discriminator step
        x_unl = None if self.data.toy is not None else self._real_batch(self.unl_batcher)
        if x_unl is None:
            x_unl = self._real_batch(None)
        x_lab, y_lab = self._labeled_batch() if use_labels else (None, None)
        with self._autocast():
            if (
                self.vbn
            ):  # the fixed reference z through the CURRENT G, with gradient (used in the G step too)
                with virtual_batch_reference(self.G):
                    self.G(self.z_ref)
            with torch.no_grad():
                x_fake = self._g(self._z(bs))
            if self.joint_d_pass:
                parts = ([x_lab] if use_labels else []) + [x_unl, x_fake]
                logits, _ = self._d(torch.cat(parts))
                chunks = torch.split(logits.float(), [p.shape[0] for p in parts])
                l_lab, l_unl, l_fake = chunks if use_labels else (None, *chunks)
            else:
                l_lab = self._d(x_lab)[0].float() if use_labels else None
                l_unl = self._d(x_unl)[0].float()
                l_fake = self._d(x_fake)[0].float()
        loss_d, parts_d = self.objectives.discriminator(l_lab, y_lab, l_unl, l_fake)
        if self.ha_d is not None:
            loss_d = loss_d + cfg.loss.historical_averaging * self.ha_d.penalty()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        D_.average_gradients(self.D, self.dist)
        self.opt_d.step()

        # ---- generator step (D frozen: no weight gradients for D)
        x_unl2 = None
        if self.objectives.feature_matching:
            x_unl2 = self._real_batch(getattr(self, "unl2_batcher", None))
        loss_g = self._generator_update(x_unl2)
        extra = cfg.train.extra_generator_step
        if extra > 0 and x_unl2 is not None and self.unl_batcher.epoch >= 2 and float(loss_g) > extra:
            # a second update on the same real batch while feature matching lags (off in the reference code)
            self._generator_update(x_unl2)

        self.ema.update()
        if self.ha_d is not None:
            self.ha_d.update()
            self.ha_g.update()
        self.step += 1
        return self._record_losses({"loss_d": loss_d, "loss_g": loss_g, **parts_d}, lr)

    def _generator_update(self, x_unl2: torch.Tensor | None) -> torch.Tensor:
        """One generator update on fresh z (and, with feature matching, the real batch ``x_unl2``
        ``(B, C, H, W)``); returns its loss (0-dim tensor)."""
        cfg, bs = self.cfg, self.cfg.data.batch_size
        for p in self._d_trainable:
            p.requires_grad_(False)
        try:
            with self._autocast():
                x_gen = self._g(self._z(bs))
                logits_gen, f_fake = self._d(x_gen)
                if self.objectives.feature_matching:
                    with torch.no_grad():
                        f_real = self._d(x_unl2)[1]
            logits_gen = logits_gen.float()
            if self.objectives.feature_matching:
                real_mean = D_.global_mean(f_real.float().flatten(1).mean(0), self.dist)  # (F,)
                fake_mean = D_.global_mean(f_fake.float().flatten(1).mean(0), self.dist)  # (F,)
                loss_g = self.objectives.generator(logits_gen, real_mean, fake_mean)
                # x world size: with global_mean and average_gradients this gives the global-batch gradient
                objective = loss_g * self.dist.world_size
            else:
                loss_g = objective = self.objectives.generator(logits_gen, None, None)
            if self.ha_g is not None:
                penalty = cfg.loss.historical_averaging * self.ha_g.penalty()
                loss_g, objective = loss_g + penalty, objective + penalty
            self.opt_g.zero_grad(set_to_none=True)
            objective.backward()
        finally:
            for p in self._d_trainable:
                p.requires_grad_(True)
        D_.average_gradients(self.G, self.dist)
        self.opt_g.step()
        D_.average_buffers(self.G, self.dist)
        return loss_g

    def _record_losses(self, values: dict[str, torch.Tensor], lr: float) -> dict[str, Any]:
        """Add the step's losses to the sums since the last evaluation and watch for non-finite values.

        CPU: Python floats (``.item()`` is cheap there). CUDA (:attr:`device_losses`): one stacked device tensor of
        sums and a device-side record of the first non-finite step, updated without reading anything back (see
        :meth:`divergence`); both paths give the same means and the same divergence record.
        """
        self.loss_count += 1
        if not self.device_losses:
            out = {"loss_d": values["loss_d"].item(), "loss_g": values["loss_g"].item(), "lr": lr}
            out.update({k: v.item() for k, v in values.items() if k not in out})
            for k, v in out.items():
                self.loss_sums[k] = self.loss_sums.get(k, 0.0) + v
                if self._diverged is None and not math.isfinite(v):
                    self._diverged = (self.step, k, v)
            return out
        self._lr_sum += lr
        stacked = torch.stack([v.detach().double() for v in values.values()])  # (L,) summed in float64
        if self._dev_sums is None or self._dev_names != tuple(values):
            self._flush_device_sums()
            self._dev_names = tuple(values)
            self._dev_sums = torch.zeros_like(stacked)
            if self._dev_bad is None:
                self._dev_bad = torch.full((3,), -1.0, dtype=torch.float64, device=self.device)
        self._dev_sums += stacked
        if self._diverged is None:
            bad = ~torch.isfinite(stacked)  # (L,)
            first = bad.to(torch.int64).argmax()  # index of the first non-finite loss (0 if none)
            new = bad.any() & (self._dev_bad[0] < 0)
            # torch.full passes the step as a kernel argument: no host-to-device copy, no synchronisation
            step = torch.full((), float(self.step), dtype=torch.float64, device=self.device)
            record = torch.stack([step, first.double(), stacked[first].double()])
            self._dev_bad = torch.where(new, record, self._dev_bad)
            self._dev_bad_names = self._dev_names
        out = {k: v.detach() for k, v in values.items()}
        return {"loss_d": out["loss_d"], "loss_g": out["loss_g"], "lr": lr, **out}

    def _flush_device_sums(self) -> None:
        """Move the device-side loss sums into :attr:`loss_sums` (one read from the GPU)."""
        if self._dev_sums is not None:
            for k, v in zip(self._dev_names, self._dev_sums.tolist()):
                self.loss_sums[k] = self.loss_sums.get(k, 0.0) + v
            self._dev_sums = None
        if self._lr_sum:
            self.loss_sums["lr"] = self.loss_sums.get("lr", 0.0) + self._lr_sum
            self._lr_sum = 0.0

    def divergence(self) -> tuple[int, str, float] | None:
        """``(step, loss name, value)`` of the first step whose losses were not finite (NaN or infinite), or
        None while every loss has been finite. The step counts updates as :attr:`step` does (the first update is
        step 1), so the parameters after that step are the first non-finite state. On CUDA the record is kept on
        the device and this call reads it (a host synchronisation: call it at evaluations, not every step)."""
        if self._diverged is None and self._dev_bad is not None:
            step, index, value = self._dev_bad.tolist()
            if step >= 0:
                self._diverged = (int(step), self._dev_bad_names[int(index)], float(value))
        return self._diverged

    def pop_mean_losses(self) -> dict[str, float]:
        """Mean of each loss since the previous call (or the start), then reset the sums."""
        self._flush_device_sums()
        means = {k: v / max(self.loss_count, 1) for k, v in self._ordered_sums().items()}
        self.loss_sums, self.loss_count = {}, 0
        return means

    def _ordered_sums(self) -> dict[str, float]:
        """The sums in the order ``loss_d, loss_g, lr, <parts>`` (the order of the metrics.jsonl columns)."""
        first = [k for k in ("loss_d", "loss_g", "lr") if k in self.loss_sums]
        return {k: self.loss_sums[k] for k in [*first, *(k for k in self.loss_sums if k not in first)]}

    # ------------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def test_accuracy(self, *, use_ema: bool = True, batch_size: int | None = None) -> float:
        """Accuracy of D's K logits on the test set, noise off (eval mode), with the EMA parameters by default.

        ``batch_size`` defaults to 1000 for a D without batch-coupled layers (the result does not depend on it)
        and to the training batch size for one with minibatch discrimination: its features sum over the other
        examples of the batch, so a test batch of another size would feed D inputs of a scale it never saw.
        """
        if batch_size is None:
            batch_size = 1000 if self.joint_d_pass else self.cfg.data.batch_size
        net = self.D_eval if use_ema else self.D
        if use_ema:
            self.ema.copy_to(self.D_eval)
        was_training = net.training
        net.eval()
        correct = 0
        x, y = self.data.test_x, self.data.test_y
        n = x.shape[0]
        for i in range(0, n, batch_size):
            # the last batch is the final `batch_size` examples, so every batch has the same size; only the
            # examples not counted yet (from i on) are scored
            j = max(min(i, n - batch_size), 0)
            logits = net(x[j : j + batch_size].to(self.device))[0][i - j :]
            correct += (logits.argmax(1).cpu() == y[i : j + batch_size].cpu()).sum().item()
        net.train(was_training)
        return correct / x.shape[0]

    @torch.no_grad()
    def generate(self, n: int, *, seed: int, batch_size: int = 500) -> torch.Tensor:
        """``n`` samples from a fixed seed, generator in eval mode, on the CPU in the model's output range."""
        gen = torch.Generator().manual_seed(seed)
        was_training = self.G.training
        self.G.eval()
        if self.vbn:  # reference statistics of the CURRENT weights (the step's pass preceded the G update)
            with virtual_batch_reference(self.G):
                self.G(self.z_ref)
        out = []
        for i in range(0, n, batch_size):
            z = self.G.sample_z(min(batch_size, n - i), generator=gen).to(self.device)
            out.append(self.G(z).float().cpu())
        self.G.train(was_training)
        return torch.cat(out)

    @torch.no_grad()
    def refresh_vbn_reference(self) -> None:
        """Recompute the generator's VBN reference statistics (paper §3.5) from the fixed reference batch through
        the CURRENT weights (eval mode, no gradient), as :meth:`generate` does. A step's reference pass precedes
        its generator update, so without this a ``generator.pt`` written after a step holds stale statistics."""
        if not self.vbn:
            return
        was_training = self.G.training
        self.G.eval()
        with virtual_batch_reference(self.G):
            self.G(self.z_ref)
        self.G.train(was_training)

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        rng = self._gather_rng()
        state = {
            "step": self.step,
            "wall_seconds": self.wall_seconds,
            "loss_sums": self._flushed_sums(),
            "loss_count": self.loss_count,
            "world_size": self.dist.world_size,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "ema": self.ema.state_dict(),
            "z_ref": self.z_ref,
            "rng": rng,
            "batchers": {},
        }
        for name in ("lab_batcher", "unl_batcher", "unl2_batcher"):
            if hasattr(self, name):
                state["batchers"][name] = getattr(self, name).state_dict()
        if self.ha_d is not None:
            state["ha_d"] = self.ha_d.state_dict()
            state["ha_g"] = self.ha_g.state_dict()
        if self.lab_idx is not None:
            state["labeled_indices"] = self.lab_idx
        return state

    def _flushed_sums(self) -> dict[str, float]:
        self._flush_device_sums()
        return dict(self._ordered_sums())

    def load_state_dict(self, state: dict[str, Any], *, restore_rng: bool = True) -> None:
        """Restore a :meth:`state_dict`. ``restore_rng=False`` leaves the random streams alone (evaluation of a
        run needs the weights only, whatever the number of processes that wrote the checkpoint)."""
        self.step = int(state["step"])
        self.wall_seconds = float(state["wall_seconds"])
        self.loss_sums = {k: float(v) for k, v in state["loss_sums"].items()}
        self._dev_sums, self._lr_sum = None, 0.0
        self.loss_count = int(state["loss_count"])
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.ema.load_state_dict(state["ema"])
        self.z_ref = state["z_ref"].to(self.device)
        for name, s in state["batchers"].items():
            getattr(self, name).load_state_dict(s)
        if self.ha_d is not None:
            self.ha_d.load_state_dict(state["ha_d"])
            self.ha_g.load_state_dict(state["ha_g"])
        if not restore_rng:
            return
        rng = state["rng"]
        saved_world = len(rng["torch"])
        if saved_world != self.dist.world_size:
            raise CheckpointError(
                f"checkpoint was written by {saved_world} process(es); resume it with the same number "
                f"(got {self.dist.world_size})"
            )
        r = self.dist.rank
        torch.set_rng_state(rng["torch"][r])
        self.z_gen.set_state(rng["z"][r])
        self.toy_gen.set_state(rng["toy"][r])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"][r], self.device)

    def _gather_rng(self) -> dict[str, list[torch.Tensor]]:
        """Every rank's random-number-generator states, as lists indexed by rank (collective under torchrun)."""
        states = {
            "torch": torch.get_rng_state(),
            "z": self.z_gen.get_state(),
            "toy": self.toy_gen.get_state(),
        }
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        comm = self.device if self.device.type == "cuda" else torch.device("cpu")  # NCCL gathers CUDA tensors
        return {k: [t.cpu() for t in D_.all_gather_tensor(v.to(comm), self.dist)] for k, v in states.items()}
