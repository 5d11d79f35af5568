"""The ``improved-gan reproduce`` subcommand: its options and what it runs (README, "Reproducing the paper's
tables"). ``improved_gan.cli`` adds the parser and calls :func:`run_reproduce`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from improved_gan.errors import UserError


def add_reproduce_parser(sub, _positive_int, _positive_float) -> None:
    """Add ``reproduce`` to the ``improved-gan`` subcommands (``cli.py`` passes its option parsers)."""
    from improved_gan.sweeps.matrix import TABLES

    p = sub.add_parser(
        "reproduce",
        help="run a paper table over seeds (local processes or SLURM) and write it beside the paper's",
    )
    p.add_argument("table", choices=list(TABLES), help="the table to reproduce")
    p.add_argument("--out", default=None, help="sweep folder (default: runs/reproduce-TABLE)")
    p.add_argument("--seeds", type=_positive_int, default=3)
    p.add_argument("--steps", type=_positive_int, default=None, help="discriminator updates per run")
    p.add_argument("--minutes", type=_positive_float, default=None, help="time budget per run (minutes)")
    p.add_argument("--labels", default=None, help="comma-separated label counts (default: the paper's)")
    p.add_argument("--no-baseline", action="store_true", help="leave out the supervised-only row")
    p.add_argument(
        "--preset", default=None, help="another preset of the same kind (e.g. table3 on fmnist-gan)"
    )
    p.add_argument("--variants", default=None, help="ablation tables: comma-separated variant suffixes")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--gather-only", action="store_true", help="write the table from the run folders; run nothing"
    )
    p.add_argument("--no-wait", action="store_true", help="slurm: submit and return (then --gather-only)")
    add_launcher_options(p, _positive_int)
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--data-dir", default=None, help="data folder (default: $IMPROVED_GAN_DATA, then the system one)"
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where each run trains: cuda = one GPU per run (checked where the runs start, not here)",
    )


def add_launcher_options(p, _positive_int) -> None:
    """``--jobs``, ``--launcher`` and the SLURM options, shared by ``reproduce`` and ``ablate``."""
    from improved_gan.sweeps.launch import SlurmOptions
    from improved_gan.sweeps.reproduce import LAUNCHERS

    p.add_argument(
        "--jobs", type=_positive_int, default=1, help="runs at once on this machine (local launcher)"
    )
    p.add_argument("--launcher", choices=LAUNCHERS, default="local")
    d = SlurmOptions()
    p.add_argument("--partition", default=None, help="slurm partition")
    p.add_argument("--time", type=_positive_int, default=d.time_minutes, help="slurm: minutes per array task")
    p.add_argument("--gpus-per-job", type=int, default=d.gpus_per_job)
    p.add_argument("--cpus-per-job", type=_positive_int, default=d.cpus_per_job)
    p.add_argument("--mem-gb", type=float, default=None)
    p.add_argument("--array-parallelism", type=_positive_int, default=d.array_parallelism)
    p.add_argument("--account", default=None)
    p.add_argument("--qos", default=None)
    p.add_argument("--constraint", default=None)
    p.add_argument(
        "--slurm-extra", action="append", default=[], metavar="KEY=VALUE", help="any other sbatch option"
    )


def stopped(exc, command: str) -> int:
    """Print how a sweep stopped by a signal continues; returns its exit status (128 + the signal)."""
    print(
        f"stopped by {exc}: the runs under way wrote their checkpoints; continue with: {command}",
        file=sys.stderr,
    )
    return exc.exit_code


def slurm_options(args):
    """The :class:`~improved_gan.sweeps.launch.SlurmOptions` of parsed :func:`add_launcher_options` options."""
    from improved_gan.sweeps.launch import SlurmOptions

    return SlurmOptions(
        partition=args.partition,
        time_minutes=args.time,
        gpus_per_job=args.gpus_per_job,
        cpus_per_job=args.cpus_per_job,
        mem_gb=args.mem_gb,
        array_parallelism=args.array_parallelism,
        account=args.account,
        qos=args.qos,
        constraint=args.constraint,
        extra=tuple(args.slurm_extra),
    )


def sweep_device(device: str, launcher: str) -> str:
    """``auto`` -> ``cuda`` where this machine has a GPU (local launcher) or for a cluster; a local ``cuda``
    sweep needs a GPU here."""
    if launcher != "local":
        return "cuda" if device == "auto" else device
    if device == "cpu":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "auto":
        return "cpu"
    raise UserError("--device cuda: CUDA is not available on this machine (use --device cpu)")


def run_reproduce(args) -> int:
    """``improved-gan reproduce``: 0 done, 1 some run failed, 128 + N stopped by signal N, 2 bad input."""
    from improved_gan.sweeps.launch import Budget, SweepStopped
    from improved_gan.sweeps.reproduce import reproduce

    labels = None
    if args.labels:
        try:
            labels = tuple(int(x) for x in args.labels.split(",") if x.strip())
        except ValueError:
            raise UserError(
                f"--labels {args.labels}: expected comma-separated integers, e.g. 100,200"
            ) from None
    out = Path(args.out) if args.out else Path("runs") / f"reproduce-{args.table}"
    slurm = slurm_options(args)
    words = [w for w in (getattr(args, "argv", None) or sys.argv[1:]) if w != "--gather-only"]
    command = shlex.join(["improved-gan", *words])  # the command that runs (or continues) this sweep
    say = (lambda line: None) if args.quiet else (lambda line: print(f"[{_clock()}] {line}", flush=True))
    try:
        result = reproduce(
            args.table,
            out,
            seeds=args.seeds,
            budget=Budget(
                steps=args.steps,
                minutes=args.minutes,
                data_dir=args.data_dir,
                device=sweep_device(args.device, args.launcher),
            ),
            jobs=args.jobs,
            launcher=args.launcher,
            slurm=slurm,
            wait=not args.no_wait,
            gather_only=args.gather_only,
            labels=labels,
            baseline=not args.no_baseline,
            sets=tuple(args.overrides),
            preset=args.preset,
            variants=tuple(v.strip() for v in args.variants.split(",") if v.strip())
            if args.variants
            else None,
            command=command,
            progress=say,
        )
    except SweepStopped as exc:
        return stopped(exc, command)
    print(result["markdown"])
    print(f"wrote {out / 'table.md'}, table.csv, table.json, table.png")
    failed = [k for k, r in result["launch"].items() if r.get("state") == "failed"]
    if failed:
        print(
            f"error: {len(failed)} run(s) failed (see {out / 'logs'}): {', '.join(failed)}", file=sys.stderr
        )
        return 1
    return 0


def _clock() -> str:
    import time

    return time.strftime("%H:%M:%S")
