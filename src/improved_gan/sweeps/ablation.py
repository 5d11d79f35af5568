"""``improved-gan ablate PRESET --jobs N`` / ``--launcher slurm``: the ablation's runs as separate processes.

:func:`launch_ablation` runs every (variant, seed) of an ablation in the folder layout of
``improved_gan.training.ablate`` (``OUT/<variant or 'all'>/seed<k>``) through the launchers of
:mod:`improved_gan.sweeps.launch`. Once they have ended, ``run_ablation`` (the in-process ablation) finds each
run's ``summary.json``, skips it, and writes ``ablation.json``, ``ablation.md`` and ``ablation.png`` as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from improved_gan.sweeps.launch import Budget, LocalLauncher, SlurmOptions, submit_slurm
from improved_gan.sweeps.matrix import ablation_runs
from improved_gan.sweeps.reproduce import _check_configs


def launch_ablation(
    preset: str,
    out: str | Path,
    *,
    variants: tuple[str, ...] | None = None,
    seeds: int = 3,
    steps: int | None = None,
    time_budget: float | None = None,
    overrides: tuple[str, ...] = (),
    data_dir: str | None = None,
    device: str = "cpu",
    jobs: int = 1,
    launcher: str = "local",
    slurm: SlurmOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the ablation's runs not yet finished, ``jobs`` at a time (or as a job array); returns the launch
    records by run (``all/seed1``, ``-ls/seed2``, ...). Failed runs are recorded in ``OUT/logs/``."""
    out = Path(out)
    runs = ablation_runs(preset, out, seeds, variants=variants, sets=tuple(overrides))
    _check_configs(runs)
    budget = Budget(steps=steps, minutes=time_budget, data_dir=data_dir, device=device)
    if launcher == "local":
        return LocalLauncher(jobs, device=device, progress=progress).run(runs, budget, out / "logs")
    cluster = "local" if launcher == "submitit-local" else "slurm"
    return submit_slurm(
        runs, budget, out / "logs", slurm or SlurmOptions(), cluster=cluster, progress=progress
    )
