"""The ``improved-gan`` command line (README, "Command line").

Commands: ``presets``, ``train``, ``resume``, ``evaluate``, ``score``, ``sample``, ``ablate``, ``reproduce``, ``toy xy``. Bad input exits with
status 2 and one ``error:`` line on stderr; an unexpected failure exits 1 with its traceback. Long runs (README,
"Long runs on clusters"): a diverged run exits 3, a run file that cannot be written 74, a run stopped by SIGINT,
SIGTERM or SIGUSR1 128 + the signal number (130, 143, 138) after writing a checkpoint and printing the command
that continues it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import traceback
from pathlib import Path

from improved_gan import __version__
from improved_gan.errors import StopRequested, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's default prints the usage first)
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _device(text: str) -> str:
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError("CUDA is not available on this machine (use --device cpu)")
        return text
    if text != "cpu":
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {text!r}")
    return text


# improved_gan.metrics.inputs' RANGES and LAYOUTS (not imported here: it imports torch; a test checks they agree)
SCORE_RANGES = ("0,255", "0,1", "-1,1")
SCORE_LAYOUTS = ("nchw", "nhwc", "nhw")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", default=None, help="data folder (default: $IMPROVED_GAN_DATA, then the system one)"
    )
    p.add_argument("--device", type=_device, default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="improved-gan", description="Improved Techniques for Training GANs (Salimans et al. 2016)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "presets", help="list the presets, or show one: its whole configuration and what it needs"
    )
    p.add_argument("name", nargs="?", default=None, help="a preset: print every --set key with its value")
    p.add_argument("--data-dir", default=None, help="check this data folder (as train --data-dir would)")

    p = sub.add_parser("train", help="train a preset")
    p.add_argument("preset")
    p.add_argument("--out", default=None, help="run folder (default: runs/PRESET-TIMESTAMP)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--steps", type=_positive_int, default=None, help="total discriminator updates")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, help="in discriminator updates")
    p.add_argument("--eval-every", type=_positive_int, default=None, help="in discriminator updates")
    p.add_argument(
        "--time-budget",
        type=_positive_float,
        default=None,
        metavar="MINUTES",
        help="stop at the first step past this many minutes, then evaluate and write the results",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration field by its dotted name, e.g. optim.lr=0.001",
    )
    p.add_argument(
        "--auto-resume",
        action="store_true",
        help="continue the run in --out if it holds one of the same configuration, else start it "
        "(for requeued jobs and torchrun --max-restarts)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(p)

    p = sub.add_parser("resume", help="continue an interrupted run from its latest checkpoint")
    p.add_argument("run_dir")
    p.add_argument(
        "--time-budget",
        type=_positive_float,
        default=None,
        metavar="MINUTES",
        help="train this many more minutes (also a run that stopped on its time budget)",
    )
    p.add_argument("--quiet", action="store_true")
    _common(p)

    p = sub.add_parser("evaluate", help="evaluate a run; writes evaluation.json")
    p.add_argument("run_dir")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (default: the run's)")
    p.add_argument("--num-samples", type=_positive_int, default=None)
    p.add_argument("--inception-weights", default=None, help="local Inception weights file (CIFAR-10, SVHN)")
    _common(p)

    p = sub.add_parser("score", help="score samples (.npz/.npy, an image folder or a run) with IS/FID/KID/PR")
    p.add_argument("input", nargs="?", help=".npy/.npz array, folder of PNG/JPEG images, or run folder")
    p.add_argument("input2", nargs="?", default=None, help="the reference to compare with (same forms)")
    p.add_argument(
        "--reference", default=None, metavar="NAME", help="a data set split, e.g. fashion-mnist-test"
    )
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric names (the list: improved-gan score --list-metrics; default: by input)",
    )
    p.add_argument("--list-metrics", action="store_true", help="print every metric, its keys and meaning")
    p.add_argument("--out", default=None, metavar="FILE.json", help="write the results as JSON")
    p.add_argument(
        "--range",
        default=None,
        choices=SCORE_RANGES,
        metavar="|".join(SCORE_RANGES),
        help="value range of float arrays (default: detected)",
    )
    p.add_argument(
        "--layout", default=None, choices=SCORE_LAYOUTS, help="axis order of arrays (default: detected)"
    )
    p.add_argument("--key", default=None, help="the array of an .npz with several")
    p.add_argument(
        "--num", type=_positive_int, default=10_000, help="samples drawn from a run folder (10000)"
    )
    p.add_argument(
        "--num-reference", type=_positive_int, default=None, help="random subset of a --reference split"
    )
    p.add_argument(
        "--inception-weights", default=None, metavar="FILE", help="the 2015 Inception-v3 weights file"
    )
    p.add_argument("--inception-backend", default="auto", choices=["auto", "builtin", "torch-fidelity"])
    p.add_argument("--classifier", default="fashion-mnist", help="the classifier of the classifier_* metrics")
    p.add_argument(
        "--splits", type=_positive_int, default=10, help="in-order splits of is/classifier_score (10)"
    )
    p.add_argument("--kid-subsets", type=_positive_int, default=100)
    p.add_argument("--kid-subset-size", type=_positive_int, default=1000)
    p.add_argument(
        "--bootstrap", type=_positive_int, default=None, metavar="N", help="95%% intervals from N replicates"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of run sampling (default: the evaluation seed of train/evaluate), subsets and the bootstrap (0)",
    )
    p.add_argument(
        "--data-dir", default=None, help="data folder (default: $IMPROVED_GAN_DATA, then the system one)"
    )
    p.add_argument("--device", type=_device, default="cpu")

    p = sub.add_parser("sample", help="write a grid of generated samples, or the samples as an .npz array")
    p.add_argument("run_dir")
    p.add_argument("--num", type=_positive_int, default=100)
    p.add_argument("--out", required=True, help="PNG grid, or .npz: key x, uint8 (N, C, H, W)")
    p.add_argument(
        "--seed", type=int, default=None, help="default: the evaluation seed of train/evaluate/score"
    )
    p.add_argument("--device", type=_device, default="cpu")

    p = sub.add_parser("ablate", help="train every ablation variant of a preset for several seeds")
    p.add_argument("preset")
    p.add_argument("--variants", default=None, help="comma-separated suffixes, e.g. -ls,-mbf (default: all)")
    p.add_argument("--seeds", type=_positive_int, default=3)
    p.add_argument("--time-budget", type=_positive_float, default=None, metavar="MINUTES-PER-RUN")
    p.add_argument("--steps", type=_positive_int, default=None)
    p.add_argument("--out", default=None, help="folder of the ablation (default: runs/ablate-PRESET)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true")
    _common(p)
    from improved_gan.sweeps.command import add_launcher_options, add_reproduce_parser

    add_launcher_options(p, _positive_int)  # --jobs N / --launcher slurm: the runs as separate processes

    add_reproduce_parser(sub, _positive_int, _positive_float)

    p = sub.add_parser("toy", help="the paper's motivating examples")
    tsub = p.add_subparsers(dest="toy", required=True, parser_class=_Parser)
    x = tsub.add_parser("xy", help="simultaneous gradient descent on min_x max_y xy (paper §3)")
    x.add_argument("--out", default="runs/toy-xy")
    x.add_argument("--lr", type=float, default=0.1)
    x.add_argument("--steps", type=_positive_int, default=100)
    return parser


def _resolve_config(args):
    from improved_gan.training.config import override
    from improved_gan.training.presets import get_preset

    cfg = get_preset(args.preset)
    sets = list(args.overrides)
    if args.seed is not None:
        sets.append(f"seed={args.seed}")
    if args.steps is not None:
        sets.append(f"train.steps={args.steps}")
    if args.checkpoint_every is not None:
        sets.append(f"train.checkpoint_every={args.checkpoint_every}")
    if getattr(args, "eval_every", None) is not None:
        sets.append(f"train.eval_every={args.eval_every}")
    if getattr(args, "time_budget", None) is not None:  # saved with the run, as any other setting
        sets.append(f"train.time_budget_minutes={args.time_budget}")
    return override(cfg, sets)


def _print_summary(summary: dict, out: Path) -> None:
    if not summary:
        return
    if "test_accuracy" in summary:
        print(
            f"test accuracy {100 * summary['test_accuracy']:.2f}% (EMA discriminator; "
            f"raw {100 * summary.get('test_accuracy_raw', float('nan')):.2f}%) with {summary.get('labels')} labels "
            f"after {summary['steps']} steps, {summary['wall_seconds'] / 60:.1f} min"
        )
    print(f"run folder: {out}  (samples: {out / 'samples' / 'latest.png'})")
    for k, v in summary.items():
        print(f"  {k:<26} {v:.4f}" if isinstance(v, float) else f"  {k:<26} {v}")


def _one_thread_for_toy_data(dataset: str, device: str | None) -> None:
    """2-D mixtures train networks of a few thousand weights: with torch's default of one thread per core, each
    tiny matmul pays for a parallel region, and on a 2-core machine whose other core was busy a ring8 run took
    3.3x longer with 2 threads than with one. Use one thread for them on the CPU unless the user chose
    (OMP_NUM_THREADS)."""
    from improved_gan.data.toy import TOY_DATASETS

    if dataset in TOY_DATASETS and (device or "cpu") == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


def cmd_presets(args) -> int:
    from improved_gan.training.presets import describe, preset_names

    if args.name is None:
        for name in preset_names():
            print(f"{name:<22} {describe(name)}")
        return 0
    return _show_preset(args.name, args.data_dir)


def _data_needs(dataset: str, data_dir: str | None) -> list[str]:
    """Lines saying where ``dataset``'s files are looked up and whether they are there now."""
    from improved_gan.data.registry import _SPECS, ENV_VAR, SYSTEM_LOCATIONS, is_toy, resolve_data_folder

    if is_toy(dataset):
        return [f"data: {dataset}, a 2-D Gaussian mixture generated in memory (no files)"]
    spec = _SPECS[dataset]
    order = ["--data-dir", f"${ENV_VAR}"] + (
        [str(SYSTEM_LOCATIONS[dataset])] if dataset in SYSTEM_LOCATIONS else []
    )
    subs = ", ".join(f"{sub}/" for sub in spec.subfolders)
    lines = [
        f"data: {dataset} files ({spec.expected}), looked up in {', then '.join(order)} "
        f"(directly or in {subs})"
    ]
    try:
        folder, _ = resolve_data_folder(dataset, data_dir)
        lines.append(f"      found in {folder}")
    except UserError as exc:
        lines.append(f"      not found now: {' '.join(str(exc).split())}")
    return lines


def _set_value(value) -> str:
    """A configuration value as ``--set KEY=VALUE`` parses it back (booleans lower case, tuples comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _show_preset(name: str, data_dir: str | None) -> int:
    from improved_gan.training.config import flat_fields
    from improved_gan.training.presets import CLASSIFIER_PRESETS, describe, get_preset

    if name in CLASSIFIER_PRESETS:
        from improved_gan.metrics.classifier import TRAIN_OPTIONS, classifier_dir, classifier_path

        dataset = CLASSIFIER_PRESETS[name][0]
        print(f"{name}: {describe(name)}")
        print(
            "trains with `improved-gan train NAME [--data-dir DIR] [--seed N] [--steps N] [--out FILE.pt]`; --set keys: "
            + ", ".join(TRAIN_OPTIONS)
        )
        print("needs:")
        for line in _data_needs(dataset, data_dir):
            print(f"  {line}")
        # training writes to the user's classifier folder (never into the package), which then overrides the shipped file
        print(f"writes: {classifier_dir() / classifier_path(dataset).name} (default; --out changes it)")
        return 0
    cfg = get_preset(name)  # ConfigError for an unknown name: one error line, exit 2
    flat = flat_fields(cfg)
    print(f"{name}: {describe(name)}")
    print("configuration (each line as `improved-gan train NAME --set KEY=VALUE` takes it):")
    for key, value in flat.items():
        print(f"  {key}={_set_value(value)}")
    print("needs:")
    for line in _data_needs(cfg.data.dataset, data_dir):
        print(f"  {line}")
    if cfg.kind == "gan" and cfg.train.metrics != ("none",):
        from improved_gan.metrics.registry import default_metrics

        metrics = cfg.train.metrics or default_metrics(cfg.data.dataset)
        if any(m.startswith("classifier_") for m in metrics):
            from improved_gan.metrics.classifier import TRAIN_PRESETS, classifier_path

            path = classifier_path(cfg.data.dataset)
            state = (
                "found"
                if path.is_file()
                else f"missing: train it with `improved-gan train {TRAIN_PRESETS[cfg.data.dataset]}`"
            )
            print(f"  classifier file (for {', '.join(metrics)}): {path} ({state})")
        if "inception_score" in metrics:
            from improved_gan.metrics.inception import ENV_WEIGHTS, WEIGHTS_NAME, weights_search_path

            where = ", ".join(str(p) for p in weights_search_path())
            print(f"  Inception weights {WEIGHTS_NAME}: --inception-weights / ${ENV_WEIGHTS}, else {where}")
    return 0


def cmd_train(args) -> int:
    from improved_gan.training.presets import CLASSIFIER_PRESETS

    if args.preset in CLASSIFIER_PRESETS:
        from improved_gan.metrics.classifier import parse_train_options, train_classifier

        dataset = CLASSIFIER_PRESETS[args.preset][0]
        for flag in ("checkpoint_every", "eval_every", "time_budget"):
            if getattr(args, flag) is not None:
                raise UserError(
                    f"--{flag.replace('_', '-')}: not used by the classifier preset {args.preset}"
                )
        kw = parse_train_options(args.overrides)
        kw.update({"seed": args.seed} if args.seed is not None else {})
        kw.update({"steps": args.steps} if args.steps is not None else {})
        result = train_classifier(
            dataset, data_dir=args.data_dir, out=args.out, device=args.device, progress=not args.quiet, **kw
        )
        print(json.dumps(result, indent=2, default=str))
        return 0
    from improved_gan.training.run import train

    cfg = _resolve_config(args)
    _one_thread_for_toy_data(cfg.data.dataset, args.device)
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.preset}-{_timestamp()}"
    try:
        summary = train(
            cfg,
            out,
            data_dir=args.data_dir,
            device=args.device,
            time_budget=cfg.train.time_budget_minutes,
            progress=not args.quiet,
            auto_resume=args.auto_resume,
        )
    except StopRequested as exc:
        exc.continue_with = _resume_command(out, args)
        raise
    _print_summary(summary, out)
    return 0


def _resume_command(run_dir, args) -> str:
    """The exact command that continues a stopped run (``--data-dir``/``--device`` as given)."""
    words = ["improved-gan", "resume", str(run_dir)]
    if args.data_dir:
        words += ["--data-dir", args.data_dir]
    if args.device != "cpu":
        words += ["--device", args.device]
    cmd = shlex.join(words)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return cmd + (f" (under torchrun, {world} processes)" if world > 1 else "")


def cmd_resume(args) -> int:
    from improved_gan.training.run import read_run_config, resume

    _one_thread_for_toy_data(read_run_config(args.run_dir)[0].data.dataset, args.device)
    try:
        summary = resume(
            args.run_dir,
            data_dir=args.data_dir,
            device=args.device,
            time_budget=args.time_budget,
            progress=not args.quiet,
        )
    except StopRequested as exc:
        exc.continue_with = _resume_command(args.run_dir, args)
        raise
    _print_summary(summary, Path(args.run_dir))
    return 0


def cmd_evaluate(args) -> int:
    from improved_gan.training.evaluate import evaluate_run

    names = (
        args.metrics.split(",") if args.metrics else None
    )  # names and aliases: the metric suite parses them
    result = evaluate_run(
        args.run_dir,
        metrics=names,
        num_samples=args.num_samples,
        data_dir=args.data_dir,
        device=args.device,
        inception_weights=args.inception_weights,  # for this call only, never put into the environment
    )
    width = max(len(k) for k in result) if result else 10
    print(f"{'metric':<{width}}  value")
    for k, v in result.items():
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    print(f"wrote {Path(args.run_dir) / 'evaluation.json'}")
    return 0


def cmd_score(args) -> int:
    from improved_gan.scoring import list_metrics, run_score

    if args.list_metrics:
        print(list_metrics())
        return 0
    if args.input is None:
        raise UserError("score: give an INPUT (an array, an image folder, a run folder or a data set split)")
    return run_score(args)


def cmd_sample(args) -> int:
    from improved_gan.training.evaluate import sample_run

    if args.out.lower().endswith(".npz"):
        from improved_gan.scoring import write_samples_npz

        s = write_samples_npz(args.run_dir, num=args.num, out=args.out, seed=args.seed, device=args.device)
        print(f"wrote {args.out} (key x: {s.describe().split(': ', 1)[1]})")
        return 0
    if not args.out.lower().endswith(".png"):
        raise UserError(f"--out {args.out}: expected a .png or .npz file name")
    sample_run(args.run_dir, num=args.num, out=args.out, seed=args.seed, device=args.device)
    print(f"wrote {args.out}")
    return 0


def cmd_ablate(args) -> int:
    from improved_gan.training.ablate import run_ablation
    from improved_gan.training.presets import get_preset

    _one_thread_for_toy_data(get_preset(args.preset).data.dataset, args.device)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip()) if args.variants else None
    out = Path(args.out) if args.out else Path("runs") / f"ablate-{args.preset}"
    runs = dict(  # which runs, and each one's budget: the same whether launched or run here
        variants=variants,
        seeds=args.seeds,
        steps=args.steps,
        time_budget=args.time_budget,
        overrides=tuple(args.overrides),
        data_dir=args.data_dir,
    )
    if args.jobs > 1 or args.launcher != "local":
        # the runs as separate processes (or a SLURM job array); run_ablation below then finds them finished
        # and writes the table, or resumes in this process a run that a launched process did not finish
        from improved_gan.sweeps.ablation import launch_ablation
        from improved_gan.sweeps.command import slurm_options, stopped, sweep_device
        from improved_gan.sweeps.launch import SweepStopped

        try:
            launch_ablation(
                args.preset,
                out,
                **runs,
                device=sweep_device(args.device, args.launcher),
                jobs=args.jobs,
                launcher=args.launcher,
                slurm=slurm_options(args),
                progress=None if args.quiet else print,
            )
        except SweepStopped as exc:
            return stopped(exc, shlex.join(["improved-gan", *(getattr(args, "argv", None) or sys.argv[1:])]))
    with _ContinueAblationOnStop(args, out):
        result = run_ablation(
            args.preset,
            out,
            **runs,
            device=args.device,
            progress=not args.quiet,
        )
    print(result["table"])
    print(f"wrote {out / 'ablation.json'}, {out / 'ablation.md'}, {out / 'ablation.png'}")
    return 0


class _ContinueAblationOnStop:
    """A stop request inside ``ablate`` continues with the same ``ablate`` command (finished runs are skipped,
    the stopped one is resumed)."""

    def __init__(self, args, out: Path):
        self.args, self.out = args, out

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, StopRequested):
            exc.continue_with = shlex.join(
                ["improved-gan", *(getattr(self.args, "argv", None) or sys.argv[1:])]
            )
        return False


def cmd_reproduce(args) -> int:
    from improved_gan.sweeps.command import run_reproduce

    return run_reproduce(args)


def cmd_toy(args) -> int:
    from improved_gan.toy_xy import run_xy_example

    summary = run_xy_example(args.out, lr=args.lr, steps=args.steps)
    print(json.dumps(summary, indent=2, default=str))
    out = Path(args.out)
    print(f"wrote {out / 'xy_trajectories.png'} (the plot) and {out / 'xy.json'}")
    return 0


def _timestamp() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S")


_COMMANDS = {
    "presets": cmd_presets,
    "train": cmd_train,
    "resume": cmd_resume,
    "evaluate": cmd_evaluate,
    "score": cmd_score,
    "sample": cmd_sample,
    "ablate": cmd_ablate,
    "reproduce": cmd_reproduce,
    "toy": cmd_toy,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # bad options (exit 2, message already printed) or --help (exit 0)
        return int(exc.code or 0)
    args.argv = argv
    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone reports a run's outcome
    try:
        code = _COMMANDS[args.command](args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is handled below
        return code
    except BrokenPipeError:  # `improved-gan presets | head`: the reader has gone; nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's final flush would fail again
        return 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe
    except StopRequested as exc:
        if rank0:
            where = (
                f"{exc.folder} at step {exc.step}, checkpoint written"
                if exc.started
                else f"before starting {exc.folder}"
            )
            then = getattr(exc, "continue_with", f"improved-gan resume {shlex.quote(exc.folder)}")
            print(
                f"stopped by {exc.signal_name}: {where}; continue with: {then}",
                file=sys.stderr,
            )
        return exc.exit_code
    except UserError as exc:
        if not exc.quiet:
            msg = " ".join(str(exc).split())
            print(f"error: {msg}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted (the checkpoints written before are intact)", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - unexpected: keep the traceback for a bug report
        traceback.print_exc()
        return 1
