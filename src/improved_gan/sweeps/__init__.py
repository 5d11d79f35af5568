"""Sweeps of independent training runs: the paper's tables (``improved-gan reproduce``) and ablations spread
over processes, GPUs or a SLURM cluster. Each run is an ``improved-gan train`` process; tables are gathered
from the run folders."""

from improved_gan.sweeps.launch import Budget, LocalLauncher, SlurmOptions, SweepStopped, submit_slurm
from improved_gan.sweeps.matrix import TABLES, RunSpec, TableSpec
from improved_gan.sweeps.reproduce import reproduce

__all__ = [
    "TABLES",
    "Budget",
    "LocalLauncher",
    "RunSpec",
    "SlurmOptions",
    "SweepStopped",
    "TableSpec",
    "reproduce",
    "submit_slurm",
]
