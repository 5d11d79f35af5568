"""The run matrix of a paper table: which presets, label counts, variants and seeds, and where each run lives.

A table is a list of :class:`RunSpec`: one training run each, started as its own process with
``improved-gan train PRESET --out FOLDER --seed S --auto-resume --set KEY=VALUE ...`` (see
:mod:`improved_gan.sweeps.launch`), so a sweep depends on the command line only, never on the training internals.

Semi-supervised tables (the paper's Tables 1 and 2 and its SVHN table, section 5): one row per method, one column
per total number of labels (``data.labels_per_class`` = labels / 10, ten classes each). Seed ``k`` sets both the
initialisation seed and ``data.label_seed``, so each seed draws another labelled subset, as the paper's spread
over random label draws. The supervised-only row trains the same discriminator on the same labelled subset with
``loss.unsupervised_weight=0``: the unlabelled and generated terms of its loss are multiplied by zero, so the
discriminator's updates come from the labels alone (the generator still trains, against a discriminator it
cannot influence; its compute is wasted but the classifier is exactly the supervised one).

The ablation table (the paper's Table 3) has one row per variant of a preset's ablation list
(:func:`improved_gan.training.presets.variants_of`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from improved_gan.errors import ConfigError

SUPERVISED_ONLY_SETS = ("loss.unsupervised_weight=0",)


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep.

    ``key`` names the run (``ssl-100/seed1``) and is its folder below the sweep's ``runs/``; ``row`` and
    ``column`` place it in the table; ``sets`` are the ``--set KEY=VALUE`` overrides beyond the seed."""

    key: str
    preset: str
    seed: int
    row: str
    column: str
    sets: tuple[str, ...] = ()
    folder: Path = field(default=Path("."))


@dataclass(frozen=True)
class TableSpec:
    """A reproducible table: ``kind`` is ``labels`` (error against labels) or ``ablation`` (Table 3's form)."""

    name: str
    kind: str
    preset: str
    title: str
    paper: str | None = None  # key of improved_gan.sweeps.paper.PAPER_ERROR_PCT, or "table3"
    labels: tuple[int, ...] = ()
    note: str = ""


_FMNIST_NOTE = (
    "No GAN-based semi-supervised result on Fashion-MNIST with these label counts is published that we know of; "
    "the paper column is empty and the plot shows the paper's MNIST figures (Table 1) for scale only."
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        TableSpec(
            "table1",
            "labels",
            "mnist-ssl",
            "Table 1: permutation-invariant MNIST, test error against the number of labels",
            paper="mnist",
            labels=(20, 50, 100, 200),
        ),
        TableSpec(
            "table2",
            "labels",
            "cifar10-ssl",
            "Table 2: CIFAR-10, test error against the number of labels",
            paper="cifar10",
            labels=(1000, 2000, 4000, 8000),
        ),
        TableSpec(
            "svhn",
            "labels",
            "svhn-ssl",
            "SVHN (paper section 5.3): test error against the number of labels",
            paper="svhn",
            labels=(500, 1000, 2000),
        ),
        TableSpec(
            "table3",
            "ablation",
            "cifar10-gan",
            "Table 3: ablation of the sample-quality techniques on CIFAR-10",
            paper="table3",
        ),
        TableSpec(
            "fmnist-table1",
            "labels",
            "fmnist-ssl",
            "Table 1's form on Fashion-MNIST: test error against the number of labels",
            labels=(20, 50, 100, 200),
            note=_FMNIST_NOTE,
        ),
        TableSpec(
            "fmnist-table3",
            "ablation",
            "fmnist-gan",
            "Table 3's form on Fashion-MNIST: ablation of the sample-quality techniques",
            note="The paper's Table 3 is on CIFAR-10 (Inception score); its figures are not comparable here.",
        ),
    ]
}

METHOD_SSL = "feature matching GAN"
METHOD_SUPERVISED = "supervised only (same D, labels alone)"


def table_spec(name: str) -> TableSpec:
    """The :class:`TableSpec` called ``name``; unknown names raise :class:`~improved_gan.errors.ConfigError`."""
    if name not in TABLES:
        raise ConfigError(f"reproduce {name}: unknown table (known: {', '.join(TABLES)})")
    return TABLES[name]


def label_runs(
    spec: TableSpec,
    out: Path,
    seeds: int,
    *,
    labels: tuple[int, ...] | None = None,
    baseline: bool = True,
    sets: tuple[str, ...] = (),
    preset: str | None = None,
) -> list[RunSpec]:
    """The runs of an error-against-labels table: methods x label counts x seeds 1..``seeds``."""
    preset = preset or spec.preset
    counts = labels or spec.labels
    for n in counts:
        if n <= 0 or n % 10:
            raise ConfigError(f"--labels {n}: expected a positive multiple of 10 (labels over ten classes)")
    methods = [("ssl", METHOD_SSL, ())] + (
        [("supervised", METHOD_SUPERVISED, SUPERVISED_ONLY_SETS)] if baseline else []
    )
    runs = []  # label count, then seed, then method: a sweep cut short has whole, paired columns
    for n in counts:
        for seed in range(1, seeds + 1):
            for tag, row, extra in methods:
                key = f"{tag}-{n}/seed{seed}"
                runs.append(
                    RunSpec(
                        key=key,
                        preset=preset,
                        seed=seed,
                        row=row,
                        column=str(n),
                        sets=(
                            *sets,
                            *extra,
                            f"data.labels_per_class={n // 10}",
                            f"data.label_seed={seed}",
                        ),
                        folder=out / "runs" / key,
                    )
                )
    return runs


def variant_label(variant: str) -> str:
    """``""`` -> ``all techniques``; other suffixes as they are (``-ls``)."""
    return "all techniques" if variant == "" else variant


def ablation_runs(
    preset: str,
    root: Path,
    seeds: int,
    *,
    variants: tuple[str, ...] | None = None,
    sets: tuple[str, ...] = (),
) -> list[RunSpec]:
    """The runs of an ablation of ``preset``: the full recipe then each variant, seeds 1..``seeds``, in
    ``root/<variant or 'all'>/seed<k>`` (the layout of ``improved-gan ablate``)."""
    from improved_gan.training.presets import variants_of

    known = variants_of(preset)
    if not known:
        raise ConfigError(
            f"preset {preset!r} has no ablation variants (try fmnist-gan, cifar10-gan, ring8-gan, grid25-gan)"
        )
    chosen = known if variants is None else tuple(_resolve_variant(v, known, preset) for v in variants)
    runs = []
    for v in [""] + [v for v in chosen if v != ""]:
        for seed in range(1, seeds + 1):
            key = f"{v or 'all'}/seed{seed}"
            runs.append(
                RunSpec(
                    key=key,
                    preset=preset + v,
                    seed=seed,
                    row=variant_label(v),
                    column="",
                    sets=tuple(sets),
                    folder=root / key,
                )
            )
    return runs


def _resolve_variant(name: str, known: tuple[str, ...], preset: str) -> str:
    for candidate in (name, "-" + name, "+" + name):
        if candidate in known:
            return candidate
    raise ConfigError(f"--variants {name}: not a variant of {preset} (known: {', '.join(known)})")
