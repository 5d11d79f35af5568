"""``improved-gan reproduce TABLE``: the runs of a paper table, spread over this machine or a SLURM cluster,
then the table with the paper's figures beside ours (README, "Reproducing the paper's tables").

The steps: :mod:`improved_gan.sweeps.matrix` lists the runs, :mod:`improved_gan.sweeps.launch` runs those
not yet finished (``--jobs N`` at once, or a submitit job array), :mod:`improved_gan.sweeps.gather` writes
``OUT/table.md``, ``table.csv``, ``table.json`` and ``table.png`` from the run folders under ``OUT/runs/``.
The same command continues a stopped sweep: finished runs are skipped, stopped ones resumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from improved_gan.errors import ConfigError
from improved_gan.sweeps.gather import write_table
from improved_gan.sweeps.launch import Budget, LocalLauncher, SlurmOptions, submit_slurm
from improved_gan.sweeps.matrix import RunSpec, ablation_runs, label_runs, table_spec

LAUNCHERS = ("local", "slurm", "submitit-local")


def plan(
    table: str,
    out: Path,
    *,
    seeds: int,
    labels: tuple[int, ...] | None = None,
    baseline: bool = True,
    sets: tuple[str, ...] = (),
    preset: str | None = None,
    variants: tuple[str, ...] | None = None,
) -> list[RunSpec]:
    """The runs of ``table`` (validated: every run's configuration is built once here, so a bad ``--set``
    fails before anything starts)."""
    spec = table_spec(table)
    if spec.kind == "labels":
        if variants:
            raise ConfigError(f"--variants: {table} is not an ablation table")
        runs = label_runs(spec, out, seeds, labels=labels, baseline=baseline, sets=sets, preset=preset)
    else:
        if labels:
            raise ConfigError(f"--labels: {table} is an ablation table (it has no label counts)")
        runs = ablation_runs(preset or spec.preset, out / "runs", seeds, variants=variants, sets=sets)
    _check_configs(runs)
    return runs


def _check_configs(runs: list[RunSpec]) -> None:
    from improved_gan.training.config import override
    from improved_gan.training.presets import get_preset

    for r in runs:
        try:
            override(get_preset(r.preset), list(r.sets) + [f"seed={r.seed}"])
        except ConfigError as exc:
            raise ConfigError(f"{r.key} ({r.preset}): {exc}") from None


def reproduce(
    table: str,
    out: str | Path,
    *,
    seeds: int = 3,
    budget: Budget | None = None,
    jobs: int = 1,
    launcher: str = "local",
    slurm: SlurmOptions | None = None,
    wait: bool = True,
    gather_only: bool = False,
    labels: tuple[int, ...] | None = None,
    baseline: bool = True,
    sets: tuple[str, ...] = (),
    preset: str | None = None,
    variants: tuple[str, ...] | None = None,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run (or continue) the sweep of ``table`` in ``out`` and write its table; returns the table dict
    (``markdown`` holds table.md's text, ``launch`` the launch records of this call)."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {launcher}: expected one of {', '.join(LAUNCHERS)}")
    out = Path(out)
    budget = budget or Budget()
    spec = table_spec(table)
    runs = plan(
        table, out, seeds=seeds, labels=labels, baseline=baseline, sets=sets, preset=preset, variants=variants
    )
    log_dir = out / "logs"
    started = time.time()
    records: dict[str, Any] = {}
    if not gather_only:
        if launcher == "local":
            records = LocalLauncher(jobs, device=budget.device, progress=progress).run(runs, budget, log_dir)
        else:
            cluster = "local" if launcher == "submitit-local" else "slurm"
            records = submit_slurm(
                runs, budget, log_dir, slurm or SlurmOptions(), cluster=cluster, wait=wait, progress=progress
            )
    meta = {
        "preset": preset or spec.preset,
        "seeds": seeds,
        "budget": {"steps": budget.steps, "minutes": budget.minutes, "device": budget.device},
        "launcher": launcher,
        "jobs": jobs,
        "command": command,
        "this_call_seconds": round(time.time() - started, 1),
        "gathered": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    result = write_table(spec, runs, out, meta)
    result["launch"] = records
    return result
