"""Feature extraction of the metric suite: images/s and extra peak memory of Inception-v3 at 299x299.

    python benchmarks/feature_extraction.py [--sizes 100 200] [--batch-size 50] [--threads 1] [--json PATH]

Runs :func:`improved_gan.metrics.features.inception_outputs` (the path of every metric: uint8 images fed in
batches, each resized to 299x299 inside the network) on N random 32x32 RGB images, with the builtin 2015
Inception-v3 graph randomly initialised (the real weights are not shipped; the cost does not depend on the
values). Each N runs in a fresh process: one warm-up batch, then the timed pass over all N images; the extra
peak memory (peak during the pass minus memory before it, see ``benchmarks/_common.py``) shows that memory is
bounded by the batch, not by N. Prints a table and writes JSON (default
``benchmarks/results/feature_extraction.json``). The comparison with torch-fidelity is
``benchmarks/feature_extraction_vs_fidelity.py`` (it needs torch-fidelity and a torchvision built for this torch).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import extra_peak_bytes, format_bytes, machine_info, run_in_subprocess, write_json  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "feature_extraction.json"


def _case(n: int, batch_size: int, threads: int, device: str) -> dict:
    from improved_gan.metrics import features
    from improved_gan.metrics.inception_net import InceptionV3TF2015

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random-inception.pth"
        torch.save(InceptionV3TF2015().state_dict(), weights)
        scorer = features.inception(weights, device=device, backend="builtin")
    images = torch.randint(
        0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    features.inception_outputs(scorer, images[:batch_size], batch_size=batch_size)  # warm-up
    seconds = []

    def run():
        start = time.perf_counter()
        pool, probs = features.inception_outputs(scorer, images, batch_size=batch_size)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds.append(time.perf_counter() - start)
        assert pool.shape == (n, 2048) and probs.shape == (n, 1008)

    peak = extra_peak_bytes(run, dev)
    return {"n": n, "seconds": seconds[0], "images_per_second": n / seconds[0], "extra_peak_bytes": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case is not None:
        print(json.dumps(_case(args.case, args.batch_size, args.threads, args.device)))
        return 0
    script = str(Path(__file__).resolve())
    options = ["--batch-size", str(args.batch_size), "--threads", str(args.threads), "--device", args.device]
    rows = [run_in_subprocess([script, *options, "--case", str(n)]) for n in args.sizes]
    rows = [r for r in rows if r is not None]
    print(f"{'N':>6}  {'seconds':>8}  {'images/s':>9}  extra peak memory (batch {args.batch_size}, 299x299)")
    for r in rows:
        print(
            f"{r['n']:>6}  {r['seconds']:>8.1f}  {r['images_per_second']:>9.2f}  {format_bytes(r['extra_peak_bytes'])}"
        )
    info = machine_info(torch.device(args.device))
    info["torch_threads"] = args.threads
    write_json(
        args.json,
        {"benchmark": "feature_extraction", "machine": info, "batch_size": args.batch_size, "rows": rows},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
