"""The GAN trainer: one discriminator step, then ``train.g_steps`` generator steps (paper §3 and §5).

One training step (openai/improved-gan ``train_*_feature_matching.py``; :meth:`Trainer.train_step`):

1. :meth:`Trainer.d_step`: a labelled batch (when labels are used), an unlabelled batch and a generated batch
   (G without gradient). If D has no batch-coupled layer the three run as ONE forward pass (per-example noise
   makes it the same computation); with minibatch discrimination or batch norm they run separately, as the paper
   requires (real and generated statistics must not mix). The loss is the K+1-class objective of
   :func:`~improved_gan.training.experiment.build_losses` (plus historical averaging, paper §3.3). After the
   update the evaluation EMA of D and D's historical average are updated.
2. :meth:`Trainer.g_step`: a fresh generated batch through D with D's parameters frozen (no weight gradients for
   D; D's noise stays on, as in the reference code). With feature matching (paper §3.1) the loss compares the
   batch means of D's features on a second, independently drawn real batch (no gradient) and on the generated
   one; otherwise it is the generator loss named by ``loss.generator``. Then G's historical average.
3. The losses go to a :class:`~improved_gan.training.loss_meter.LossMeter` (host floats on the CPU, device sums on
   CUDA: no host synchronisation in the step).

Beside the algorithm, not inside it: bf16 autocast (:meth:`Trainer._autocast`), ``torch.compile`` of the forward
passes, channels_last memory order of the conv nets on CUDA (``train.channels_last``), and the all-reduces of
:mod:`improved_gan.training.distributed` under torchrun. All randomness comes from generators whose states are
saved in the checkpoint (the global torch RNG drives the noise layers), so a resumed run is bit-identical to an
uninterrupted one on the CPU.

The batch under torchrun (:mod:`improved_gan.training.batching`): ``data.batch_size`` is the GLOBAL batch. Each of
the ``W`` ranks takes its slice of ``data.batch_size / W`` examples (:attr:`Trainer.batch_size`) of every batch:
the real batches are slices of the one global batch the data streams give, and the latent ``z`` (and the points of
a toy set) are drawn for the whole global batch from a generator seeded alike on every rank, each rank keeping its
slice. So ``W`` processes see the very data and ``z`` of one process; what differs is the per-example noise of
D's noise layers (a stream per rank) and layers that couple a batch's examples (they see the rank's slice).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from improved_gan.data import EpochBatcher, labeled_subset
from improved_gan.errors import CheckpointError, ConfigError
from improved_gan.nn import data_dependent_init, virtual_batch_reference
from improved_gan.optim import ReferenceAdam, make_optimizer
from improved_gan.regularizers import HistoricalAveraging
from improved_gan.training import distributed as D_
from improved_gan.training.batching import per_rank_batch, rank_slice
from improved_gan.training.config import Config, validate
from improved_gan.training.device_options import has_conv, to_channels_last
from improved_gan.training.ema import EMA
from improved_gan.training.experiment import build_losses, build_networks, is_batch_coupled, uses_vbn
from improved_gan.training.loss_meter import LossMeter


@dataclass
class TrainData:
    """What the trainer needs of a data set, already on the device and normalised.

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
    """Owns the networks, optimizers and training state of one run (one rank, under torchrun).

    ``cfg`` is checked as the command line checks it (:func:`~improved_gan.training.config.validate`): a
    configuration built in Python with :func:`dataclasses.replace` gets the same :class:`ConfigError` as ``--set``.
    """

    def __init__(self, cfg: Config, data: TrainData, *, device: str = "cpu", dist: D_.DistInfo | None = None):
        self.cfg, self.data = validate(cfg), data
        self.device = torch.device(device)
        self.dist = dist or D_.DistInfo()
        r, w = self.dist.rank, self.dist.world_size
        #: this rank's examples of each batch: ``data.batch_size`` (the global batch) over the world size
        self.batch_size = bs = per_rank_batch(cfg.data.batch_size, w)
        self._rows = rank_slice(cfg.data.batch_size, w, r)  # this rank's rows of a global batch

        # Parameters and the data-dependent init come from the run seed alone: identical on every rank.
        torch.manual_seed(_seed(cfg.seed, 0))
        self.G, self.D = build_networks(cfg, image_shape=data.image_shape, num_classes=data.num_classes)
        self.G.to(self.device)
        self.D.to(self.device)
        #: conv nets' weights and images in NHWC order (``train.channels_last``, on CUDA only: README, "GPU")
        self.channels_last = bool(cfg.train.channels_last and self.device.type == "cuda" and has_conv(self.D))
        if self.channels_last:
            self._to_channels_last(data)
        self.objectives = build_losses(cfg)
        self.joint_d_pass = not is_batch_coupled(self.D)
        self.vbn = uses_vbn(self.G)
        self._init_from_data(cfg, data)
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
        self.lab_idx = None
        if cfg.loss.use_labels and data.toy is None:
            self.lab_idx = self._labeled_indices(data.train_y.cpu())
            n_lab = len(self.lab_idx)
            # "tiled": the labelled set repeated ceil(N / n_lab) times (N unlabelled examples), one
            # permutation of the copies per epoch; a drawn position p is the labelled example p mod n_lab
            copies = -(-data.train_x.shape[0] // n_lab) if cfg.data.labeled_batches == "tiled" else 1
            self.lab_batcher = EpochBatcher(
                n_lab * copies, bs, seed=_seed(cfg.seed, 10), rank=r, world_size=w
            )
        if data.toy is None:
            n = data.train_x.shape[0]
            self.unl_batcher = EpochBatcher(n, bs, seed=_seed(cfg.seed, 11), rank=r, world_size=w)
            self.unl2_batcher = EpochBatcher(n, bs, seed=_seed(cfg.seed, 12), rank=r, world_size=w)
        # z and toy points: one stream for the global batch, the same on every rank (each keeps its slice); the
        # global RNG that drives the noise/dropout layers: a stream per rank.
        self.z_gen = torch.Generator().manual_seed(_seed(cfg.seed, 20, 0))
        self.toy_gen = torch.Generator().manual_seed(_seed(cfg.seed, 21, 0))
        torch.manual_seed(_seed(cfg.seed, 22, r))

        self.step = 0
        self.wall_seconds = 0.0
        #: seconds of a time budget, if the run has one: the learning-rate schedule then anneals over it
        self.time_budget_seconds: float | None = (
            cfg.train.time_budget_minutes * 60.0 if cfg.train.time_budget_minutes is not None else None
        )
        # the step's losses since the last evaluation (part of the state, so resumed logs match exactly); kept
        # on the device (no per-step read) on CUDA, as host floats on the CPU
        self.meter = LossMeter(self.device, on_device=self.device.type == "cuda")
        self._last_lr: float | None = None
        self._d_trainable = [p for p in self.D.parameters() if p.requires_grad]
        self.bf16 = cfg.train.precision == "bf16"
        # the step's forward passes, optionally through torch.compile (README, "Precision, compilation and time
        # budgets"); self.G and self.D stay the plain modules (state dicts, evaluation)
        self._g, self._d = _compiled(self.G, cfg.train.compile), _compiled(self.D, cfg.train.compile)

    def _to_channels_last(self, data: TrainData) -> None:
        """G's and D's 4-D weights, and the image sets (a batch indexed from them keeps the layout), in
        channels_last order."""
        to_channels_last(self.G)
        to_channels_last(self.D)
        if data.train_x is not None:
            data.train_x = to_channels_last(data.train_x)
            data.test_x = to_channels_last(data.test_x)

    def _init_from_data(self, cfg: Config, data: TrainData) -> None:
        """The VBN reference batch (paper §3.5) and the data-dependent init of G and D, from the run seed."""
        init_gen = torch.Generator().manual_seed(_seed(cfg.seed, 1))
        ref_gen = torch.Generator().manual_seed(_seed(cfg.seed, 2))
        self.z_ref = self.G.sample_z(cfg.data.batch_size, generator=ref_gen).to(self.device)
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
        """``(B, *image_shape)`` real examples from ``batcher``, or ``(B, 2)`` points of the toy mixture (this
        rank's slice of a global batch drawn alike on every rank); ``B`` = :attr:`batch_size`."""
        if self.data.toy is not None:
            points = self.data.toy.sample(self.cfg.data.batch_size, generator=self.toy_gen)
            return self._to_device(points[self._rows])
        idx = batcher.next_indices()
        if self.data.train_x.device.type == "cuda":
            idx = self._to_device(idx)
        return self.data.train_x[idx].to(self.device)

    def _labeled_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.lab_idx[self.lab_batcher.next_indices() % len(self.lab_idx)]
        if self.data.train_x.device.type == "cuda":
            idx = self._to_device(idx)
        return self.data.train_x[idx].to(self.device), self.data.train_y[idx].to(self.device)

    def _z(self, n: int) -> torch.Tensor:
        """This rank's rows of the ``(n, z_dim)`` latent batch of a GLOBAL batch of ``n`` (``n / W`` rows).

        Drawn on the CPU generator (the same z on every device, saved in the checkpoint; alike on every rank),
        copied without a sync."""
        z = self.G.sample_z(n, generator=self.z_gen, device="cpu")
        return self._to_device(
            z[rank_slice(n, self.dist.world_size, self.dist.rank)] if self.dist.enabled else z
        )

    def _vbn_reference(self) -> None:
        """The fixed reference z through the CURRENT G, with gradient (paper §3.5): once per G update."""
        if self.vbn:
            with virtual_batch_reference(self.G):
                self.G(self.z_ref)

    # --------------------------------------------------------------------------------------------- schedule
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

    def _set_lr(self) -> float:
        """Give both optimizers the scheduled learning rate and, for ``reference_adam``, the place of eps
        (``optim.eps_inside_from``), both from :meth:`progress`; return the learning rate."""
        lr = self._lr()
        inside = self.progress() >= self.cfg.optim.eps_inside_from
        for opt in (self.opt_d, self.opt_g):
            if isinstance(opt, ReferenceAdam):
                for group in opt.param_groups:
                    group["eps_inside"] = inside
        if lr != self._last_lr:
            for opt in (self.opt_d, self.opt_g):
                for group in opt.param_groups:
                    group["lr"] = lr
            self._last_lr = lr
        return lr

    def _autocast(self):
        """bfloat16 autocast of the forward passes for ``train.precision="bf16"``: matrix products in bfloat16,
        float32 accumulation and parameters (README, "Precision, compilation and time budgets")."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # --------------------------------------------------------------------------------------------------- step
    def train_step(self) -> dict[str, Any]:
        """One discriminator update and ``train.g_steps`` generator updates; returns the step's losses and ``lr``
        (``loss_d``, ``loss_g`` of the last G update, ``lr``, then the parts of ``loss_d``).

        On the CPU the losses are Python floats. On CUDA they are 0-dim device tensors (reading them would wait
        for the GPU): the step makes no host synchronisation (see :mod:`improved_gan.training.loss_meter`).
        """
        lr = self._set_lr()
        self.G.train()
        self.D.train()
        loss_d, parts_d = self.d_step()
        for i in range(self.cfg.train.g_steps):
            if i > 0:  # the D step's reference pass served the first G update
                with self._autocast():
                    self._vbn_reference()
            loss_g = self.g_step()
        if self._extra_generator_step_due(loss_g):
            # a further update on fresh z and the same real batch while feature matching lags (the public
            # PyTorch port does this; the reference code does not: train.extra_generator_step = 0)
            with self._autocast():
                self._vbn_reference()
            self.g_step(x_real=self._g_real)
        self.step += 1
        return self.meter.add(self.step, {"loss_d": loss_d, "loss_g": loss_g, "lr": lr, **parts_d})

    def _extra_generator_step_due(self, loss_g: torch.Tensor) -> bool:
        """``train.extra_generator_step`` > 0 with feature matching, from the third epoch of unlabelled data on,
        and the feature-matching loss above it. Reads ``loss_g`` (a host synchronisation on CUDA), only when on."""
        extra = self.cfg.train.extra_generator_step
        if extra <= 0 or not self.objectives.feature_matching:
            return False
        return self.unl_batcher.epoch >= 2 and float(loss_g.detach()) > extra

    def d_step(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One discriminator update on real (labelled, unlabelled) and generated batches; returns
        ``(loss_d, parts)``, 0-dim tensors (``parts``: ``loss_unl`` and, with labels, ``loss_lab``)."""
        use_labels = self.lab_idx is not None
        x_unl = self._real_batch(getattr(self, "unl_batcher", None))
        x_lab, y_lab = self._labeled_batch() if use_labels else (None, None)
        with self._autocast():
            self._vbn_reference()  # (used by the G update too)
            with torch.no_grad():
                x_fake = self._g(self._z(self.cfg.data.batch_size))
            if self.joint_d_pass:
                batches = ([x_lab] if use_labels else []) + [x_unl, x_fake]
                logits, _ = self._d(torch.cat(batches))
                chunks = torch.split(logits.float(), [b.shape[0] for b in batches])
                l_lab, l_unl, l_fake = chunks if use_labels else (None, *chunks)
            else:
                l_lab = self._d(x_lab)[0].float() if use_labels else None
                l_unl = self._d(x_unl)[0].float()
                l_fake = self._d(x_fake)[0].float()
        loss_d, parts = self.objectives.discriminator(l_lab, y_lab, l_unl, l_fake)
        if self.ha_d is not None:
            loss_d = loss_d + self.cfg.loss.historical_averaging * self.ha_d.penalty()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        D_.average_gradients(self.D, self.dist)
        self.opt_d.step()
        self.ema.update()
        if self.ha_d is not None:
            self.ha_d.update()
        return loss_d, parts

    def g_step(self, x_real: torch.Tensor | None = None) -> torch.Tensor:
        """One generator update against the current D (D frozen: no weight gradients); returns ``loss_g``
        (0-dim; with historical averaging, its penalty included). Feature matching compares with ``x_real``
        ``(B, *image_shape)``, by default a fresh unlabelled batch (kept as ``_g_real`` for an extra update)."""
        for p in self._d_trainable:
            p.requires_grad_(False)
        try:
            with self._autocast():
                x_gen = self._g(self._z(self.cfg.data.batch_size))
                logits_gen, f_fake = self._d(x_gen)
                if self.objectives.feature_matching:
                    if x_real is None:
                        x_real = self._real_batch(getattr(self, "unl2_batcher", None))
                    self._g_real = x_real
                    with torch.no_grad():
                        f_real = self._d(x_real)[1]
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
                penalty = self.cfg.loss.historical_averaging * self.ha_g.penalty()
                loss_g, objective = loss_g + penalty, objective + penalty
            self.opt_g.zero_grad(set_to_none=True)
            objective.backward()
        finally:
            for p in self._d_trainable:
                p.requires_grad_(True)
        D_.average_gradients(self.G, self.dist)
        self.opt_g.step()
        D_.average_buffers(self.G, self.dist)
        if self.ha_g is not None:
            self.ha_g.update()
        return loss_g

    # ------------------------------------------------------------------------------------------ loss record
    @property
    def device_losses(self) -> bool:
        """Keep the loss sums on the device (CUDA's default) rather than reading each step's losses."""
        return self.meter.on_device

    @device_losses.setter
    def device_losses(self, value: bool) -> None:
        self.meter.on_device = bool(value)

    @property
    def loss_count(self) -> int:
        """Steps whose losses were added since the last :meth:`pop_mean_losses`."""
        return self.meter.count

    def divergence(self) -> tuple[int, str, float] | None:
        """``(step, loss name, value)`` of the first step whose losses were not finite (NaN or infinite), or
        None while every loss has been finite. The step counts updates as :attr:`step` does (the first update is
        step 1), so the parameters after that step are the first non-finite state. On CUDA the record is kept on
        the device and this call reads it (a host synchronisation: call it at evaluations, not every step)."""
        return self.meter.divergence()

    def pop_mean_losses(self) -> dict[str, float]:
        """Mean of each loss since the previous call (or the start), then reset the sums."""
        return self.meter.pop_means()

    # ------------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def test_accuracy(self, *, use_ema: bool = True, batch_size: int | None = None) -> float:
        """Accuracy of D's K logits on the test set, noise off (eval mode), with the EMA parameters by default.

        ``batch_size`` defaults to 1000 for a D without batch-coupled layers (the result does not depend on it)
        and to the training batch size (this rank's, :attr:`batch_size`) for one with minibatch discrimination:
        its features sum over the other examples of the batch, so a test batch of another size would feed D inputs
        of a scale it never saw.
        """
        if batch_size is None:
            batch_size = 1000 if self.joint_d_pass else self.batch_size
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
        """``n`` samples from a fixed seed, generator in eval mode, on the CPU in the model's output range
        (:func:`improved_gan.sampling.generate`; VBN reference statistics of the CURRENT weights)."""
        from improved_gan.sampling import generate

        ref = self.z_ref if self.vbn else None
        return generate(self.G, n, seed=seed, batch_size=batch_size, device=self.device, vbn_reference=ref)

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
            **self.meter.state_dict(),  # loss_sums, loss_count
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

    def load_state_dict(self, state: dict[str, Any], *, restore_rng: bool = True) -> None:
        """Restore a :meth:`state_dict`. ``restore_rng=False`` leaves the random streams alone (evaluation of a
        run needs the weights only, whatever the number of processes that wrote the checkpoint)."""
        self.step = int(state["step"])
        self.wall_seconds = float(state["wall_seconds"])
        self.meter.load_state_dict(state)
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
