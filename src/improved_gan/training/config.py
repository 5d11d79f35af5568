"""Typed, frozen training configurations and their ``--set KEY=VALUE`` overrides.

A :class:`Config` groups five frozen dataclasses; a field is addressed by its dotted name
(``optim.lr``, ``loss.real_target``, ``data.labels_per_class``). Which techniques are on is decided by these fields
when the trainer builds the networks (``improved_gan.training.experiment.build_networks``) and the objectives
(``improved_gan.training.experiment.build_losses``); the trainer reads a few more itself (the learning-rate
schedule, ``train.g_steps``, ``train.precision``, ``train.compile``, ``train.time_budget_minutes``).

The network settings that default to None (``model.dropout``, ``model.input_noise``, ...) mean "the
architecture's own choice" (documented in :mod:`improved_gan.models`); a value overrides it, and naming one that
an architecture does not have is a :class:`~improved_gan.errors.ConfigError` (``ARCH_OPTIONS`` lists them).

Batch size semantics: ``data.batch_size`` is the GLOBAL batch of one step, whatever the number of processes; under
``torchrun`` each of the ``W`` ranks takes ``batch_size / W`` examples (``improved_gan.training.batching``), and
``config.json`` records both (the docs' multi-process page).

The GPU options (``train.tf32``, ``train.cudnn_benchmark``, ``train.deterministic``, ``train.channels_last``) change
CUDA runs only (README, "GPU"; ``improved_gan.training.device_options``), and so does
``train.async_checkpoints`` (periodic checkpoints written by a background thread; on the CPU the training thread
writes them).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from improved_gan._dataset_names import canonical_dataset_name
from improved_gan.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion-mnist"
    labels_per_class: int = 10  # labelled examples per class (paper §5: 10 -> 100 labels); 0 = none; -1 = all
    label_seed: int = 1  # the reference code's --seed_data: chooses the labelled subset
    batch_size: int = 100  # the GLOBAL batch of a step, divided over the processes under torchrun
    # how labelled batches are drawn: "permutation" = each batch a fresh order of the labelled set (reference
    # code: with 100 labels and a batch of 100, every label once per batch); "tiled" = the labelled set repeated
    # to the size of the unlabelled set and shuffled, so a batch may hold repeats (the public PyTorch port)
    labeled_batches: str = "permutation"


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mnist"  # mnist | cifar | svhn | dcgan | toy
    z_dim: int = 100
    minibatch_kernels: int = 0  # 0 = no minibatch discrimination (paper §3.2)
    minibatch_kernel_dim: int = 5
    generator_norm: str = "batch"  # batch | virtual | none  (virtual = VBN, paper §3.5)
    init_batch: int = 500  # examples for the data-dependent initialisation (reference: trainx[:500])
    # None below = the architecture's own value (models/*.py); ARCH_OPTIONS says which architecture has which
    dropout: float | None = None  # D's hidden dropout (cifar, svhn: 0.5 per stride-2 stage; dcgan: 0)
    input_dropout: float | None = (
        None  # D's input dropout (cifar, svhn: 0.2 without minibatch features, else 0)
    )
    input_noise: float | None = (
        None  # sigma of D's input noise (mnist 0.3; cifar, svhn 0 / 0.2 with mbf; dcgan 0.2)
    )
    hidden_noise: float | None = None  # sigma of the noise after D's hidden layers (mnist 0.5)
    out_init_scale: float | None = None  # std of D's logits (and G's output) after the data-dependent init
    train_hidden_scale: bool | None = (
        None  # train D's hidden weight-norm scales (reference: False; toy: True)
    )
    minibatch_median: float | None = None  # toy: median pairwise distance the minibatch init aims at (1.0)
    data_init: bool = (
        True  # data-dependent init of the weight-normalised layers (reference); False: g 1, bias 0
    )
    generator_output: str = (
        "sigmoid"  # sigmoid (reference) | softplus: the MNIST generator's last nonlinearity
    )


@dataclass(frozen=True)
class LossConfig:
    use_labels: bool = True  # K+1-class discriminator trained with labels (paper §5); False = unsupervised D
    unsupervised_weight: float = 0.5  # reference: 0.5 inside loss_unl times --unlabeled_weight 1
    generator: str = "feature_matching"  # feature_matching | nonsaturating | saturating (paper §3.1, §2)
    feature_distance: str = "mse"  # l2 | mse | l1 (paper §3.1)
    real_target: float = 1.0  # one-sided label smoothing: 0.9 (paper §3.4)
    historical_averaging: float = 0.0  # weight of the HA penalty for both players; 0 = off (paper §3.3)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "reference_adam"  # reference_adam | adam
    lr: float = 0.003
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    decay_start: float = (
        1.0  # fraction of training after which lr decays linearly to 0 (reference CIFAR: 2/3)
    )
    # reference_adam only: before this fraction of training eps sits outside the square root, as in PyTorch's
    # Adam; from it on inside, as in the reference (0 = the reference throughout)
    eps_inside_from: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 180_000  # discriminator updates (reference MNIST: 300 epochs x 600 steps)
    eval_every: int = 600
    checkpoint_every: int = 600
    keep_every: int = 0  # also keep checkpoints/step_XXXXXXX.pt every N steps (0 = only last.pt)
    ema_decay: float = 0.9999  # EMA of D's parameters for evaluation (reference code)
    eval_samples: int = 10_000  # generated samples for sample-quality metrics
    metrics: tuple[str, ...] = ()  # sample-quality metrics; () = the data set's defaults
    sample_grid: int = 100  # images in each samples/*.png grid
    precision: str = "fp32"  # fp32 | bf16: bfloat16 autocast of the step's forward passes (README)
    compile: str = "off"  # off | default | reduce-overhead: torch.compile of the step's G and D passes
    g_steps: int = 1  # generator updates per discriminator update
    # wall-clock budget of the run (None = none): the run stops when it is spent and a learning-rate decay anneals
    # over it (Trainer.progress); saved in config.json with the rest of the configuration
    time_budget_minutes: float | None = None
    # GPU options (README, "GPU"): CUDA only, no effect on the CPU
    tf32: bool = True  # float32 matrix products and cuDNN convolutions on TF32 tensor cores
    cudnn_benchmark: bool = True  # cuDNN times its algorithms at each new shape and keeps the fastest
    deterministic: bool = False  # reproducible cuDNN algorithms only (needs cudnn_benchmark=false)
    channels_last: bool = False  # the conv nets' weights and images in NHWC memory order
    # CUDA: periodic checkpoints serialised and written by a background thread (atomic, verified; a failed write is
    # reported at the next checkpoint); the stop's and the final checkpoint, and all on the CPU, are written in line
    async_checkpoints: bool = True
    # > 0: a second generator update (new z, same real batch) whenever the feature-matching loss exceeds this,
    # from the third epoch of unlabelled data on; 0 = off (reference)
    extra_generator_step: float = 0.0


@dataclass(frozen=True)
class Config:
    preset: str = "custom"
    kind: str = "ssl"  # ssl | gan
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as nested plain dicts (what ``config.json`` holds)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


_CHOICES = {
    "kind": ("ssl", "gan"),
    "model.arch": ("mnist", "cifar", "svhn", "dcgan", "toy"),
    "model.generator_norm": ("batch", "virtual", "none"),
    "loss.generator": ("feature_matching", "nonsaturating", "saturating"),
    "model.generator_output": ("sigmoid", "softplus"),
    "data.labeled_batches": ("permutation", "tiled"),
    "loss.feature_distance": ("l2", "mse", "l1"),
    "optim.name": ("reference_adam", "adam"),
    "train.precision": ("fp32", "bf16"),
    "train.compile": ("off", "default", "reduce-overhead"),
}


#: The optional network settings (``model.*``, None = the architecture's value) each architecture has.
ARCH_OPTIONS: dict[str, frozenset[str]] = {
    "mnist": frozenset({"input_noise", "hidden_noise", "out_init_scale", "train_hidden_scale"}),
    "cifar": frozenset({"dropout", "input_dropout", "input_noise", "out_init_scale", "train_hidden_scale"}),
    "svhn": frozenset({"dropout", "input_dropout", "input_noise", "out_init_scale", "train_hidden_scale"}),
    "dcgan": frozenset({"dropout", "input_noise", "out_init_scale", "train_hidden_scale"}),
    "toy": frozenset({"out_init_scale", "train_hidden_scale", "minibatch_median"}),
}
_OPTIONAL_MODEL_FIELDS = (
    "dropout",
    "input_dropout",
    "input_noise",
    "hidden_noise",
    "out_init_scale",
    "train_hidden_scale",
    "minibatch_median",
)


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def flat_fields(cfg: Config) -> dict[str, Any]:
    """All leaf fields of ``cfg`` by dotted name, e.g. ``{"optim.lr": 0.003, ...}``."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            for g in fields(value):
                out[f"{f.name}.{g.name}"] = getattr(value, g.name)
        else:
            out[f.name] = value
    return out


def _parse_value(key: str, text: str, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if typ is int:
            return int(text)
        if typ is float:
            return float(text)
        if typ is str:
            return text
        if origin is tuple:
            return tuple(s.strip() for s in text.split(",") if s.strip())
        if origin in (typing.Union, types.UnionType):
            if text.strip().lower() in ("none", "default", ""):
                return None
            (inner,) = [a for a in typing.get_args(typ) if a is not type(None)]
            return _parse_value(key, text, inner)
    except ValueError:
        name = getattr(typ, "__name__", str(typ))
        raise ConfigError(f"--set {key}={text}: expected a value of type {name}") from None
    raise ConfigError(f"--set {key}: cannot set a field of type {typ}")


def validate(cfg: Config) -> Config:
    """Check choices and ranges; raise :class:`~improved_gan.errors.ConfigError` naming the field.

    Returns ``cfg`` with ``data.dataset`` in its canonical spelling (``fmnist`` -> ``fashion-mnist``).
    """
    try:
        dataset = canonical_dataset_name(cfg.data.dataset)
    except ConfigError as exc:
        raise ConfigError(f"data.dataset: {exc}") from None
    if dataset != cfg.data.dataset:
        cfg = replace(cfg, data=replace(cfg.data, dataset=dataset))
    flat = flat_fields(cfg)
    for key, allowed in _CHOICES.items():
        if flat[key] not in allowed:
            raise ConfigError(f"{key}={flat[key]!r}: expected one of {', '.join(allowed)}")
    positive = [
        "data.batch_size",
        "model.z_dim",
        "train.steps",
        "train.eval_every",
        "train.checkpoint_every",
        "train.eval_samples",
        "model.init_batch",
        "train.g_steps",
    ]
    for key in positive:
        if flat[key] <= 0:
            raise ConfigError(f"{key}={flat[key]}: expected a positive integer")
    if flat["data.labels_per_class"] < -1:
        raise ConfigError(
            f"data.labels_per_class={flat['data.labels_per_class']}: expected -1 (all), 0 or more"
        )
    for key in ("model.minibatch_kernels", "train.sample_grid", "train.keep_every"):
        if flat[key] < 0:
            raise ConfigError(f"{key}={flat[key]}: expected a non-negative integer")
    if not 0.0 < flat["optim.lr"]:
        raise ConfigError(f"optim.lr={flat['optim.lr']}: expected a positive learning rate")
    for key in ("optim.beta1", "optim.beta2", "train.ema_decay"):
        if not 0.0 <= flat[key] < 1.0:
            raise ConfigError(f"{key}={flat[key]}: expected a number in [0, 1)")
    if not 0.0 < flat["loss.real_target"] <= 1.0:
        raise ConfigError(f"loss.real_target={flat['loss.real_target']}: expected a number in (0, 1]")
    if not 0.0 <= flat["optim.decay_start"] <= 1.0:
        raise ConfigError(f"optim.decay_start={flat['optim.decay_start']}: expected a fraction in [0, 1]")
    if not 0.0 <= flat["optim.eps_inside_from"] <= 1.0:
        raise ConfigError(
            f"optim.eps_inside_from={flat['optim.eps_inside_from']}: expected a fraction in [0, 1]"
        )
    if flat["optim.eps_inside_from"] > 0 and cfg.optim.name != "reference_adam":
        raise ConfigError(
            "optim.eps_inside_from: only for optim.name=reference_adam (PyTorch's Adam has eps outside)"
        )
    if flat["train.extra_generator_step"] < 0:
        raise ConfigError(f"train.extra_generator_step={flat['train.extra_generator_step']}: expected >= 0")
    if cfg.model.generator_output != "sigmoid" and cfg.model.arch != "mnist":
        raise ConfigError("model.generator_output=softplus: only for model.arch=mnist")
    if flat["loss.historical_averaging"] < 0 or flat["loss.unsupervised_weight"] < 0:
        raise ConfigError("loss weights must be non-negative")
    _validate_model_options(cfg)
    budget = cfg.train.time_budget_minutes
    if budget is not None and not budget > 0:
        raise ConfigError(
            f"train.time_budget_minutes={budget}: expected a positive number of minutes (or none)"
        )
    if cfg.train.deterministic and cfg.train.cudnn_benchmark:
        raise ConfigError(
            "train.deterministic=true needs train.cudnn_benchmark=false (the autotuner may pick a "
            "nondeterministic algorithm)"
        )
    if cfg.kind == "ssl" and (not cfg.loss.use_labels or cfg.data.labels_per_class == 0):
        raise ConfigError("kind=ssl needs loss.use_labels=true and data.labels_per_class > 0")
    return cfg


def _validate_model_options(cfg: Config) -> None:
    m = cfg.model
    for name in _OPTIONAL_MODEL_FIELDS:
        value = getattr(m, name)
        if value is None:
            continue
        if name not in ARCH_OPTIONS[m.arch]:
            have = ", ".join(f"model.{n}" for n in _OPTIONAL_MODEL_FIELDS if n in ARCH_OPTIONS[m.arch])
            raise ConfigError(f"model.{name}: model.arch={m.arch} has no such setting (it has {have})")
        if name in ("dropout", "input_dropout") and not 0.0 <= value < 1.0:
            raise ConfigError(f"model.{name}={value}: expected a probability in [0, 1)")
        if name in ("input_noise", "hidden_noise") and not value >= 0.0:
            raise ConfigError(f"model.{name}={value}: expected a non-negative standard deviation")
        if name in ("out_init_scale", "minibatch_median") and not value > 0.0:
            raise ConfigError(f"model.{name}={value}: expected a positive number")


def override(cfg: Config, assignments: list[str] | tuple[str, ...]) -> Config:
    """Apply ``KEY=VALUE`` strings (dotted field names) to a frozen config; unknown keys raise ConfigError."""
    flat = flat_fields(cfg)
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in flat:
            # a right field name in the wrong group (train.lr for optim.lr), else the closest spellings
            near = [k for k in flat if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]][:3]
            near = near or difflib.get_close_matches(key, list(flat), n=3, cutoff=0.6)
            hint = (
                f"did you mean {' or '.join(near)}?"
                if near
                else "'improved-gan presets PRESET' lists every key"
            )
            raise ConfigError(f"--set {key}: unknown configuration key; {hint}")
        if "." in key:
            group, name = key.split(".", 1)
            sub = getattr(cfg, group)
            value = _parse_value(key, text, _field_types(type(sub))[name])
            cfg = replace(cfg, **{group: replace(sub, **{name: value})})
        else:
            value = _parse_value(key, text, _field_types(Config)[key])
            cfg = replace(cfg, **{key: value})
    return validate(cfg)


def from_dict(d: dict[str, Any]) -> Config:
    """Rebuild a :class:`Config` from ``Config.to_dict()`` output (e.g. a run's ``config.json``)."""
    try:
        groups = {}
        hints = _field_types(Config)
        for f in fields(Config):
            if dataclasses.is_dataclass(hints[f.name]):
                sub_cls = hints[f.name]
                sub = dict(d[f.name])
                for g in fields(sub_cls):
                    if g.name in sub and typing.get_origin(_field_types(sub_cls)[g.name]) is tuple:
                        sub[g.name] = tuple(sub[g.name])
                groups[f.name] = sub_cls(**sub)
            elif f.name in d:
                groups[f.name] = d[f.name]
        return validate(Config(**groups))
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"config.json: not an improved-gan configuration ({exc})") from None


def diff_fields(a: Config, b: Config) -> set[str]:
    """Dotted names of the fields that differ between two configs (the preset name excluded)."""
    fa, fb = flat_fields(a), flat_fields(b)
    return {k for k in fa if k != "preset" and fa[k] != fb[k]}
