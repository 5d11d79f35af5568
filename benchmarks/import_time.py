"""Import and start-up time of the public API and the command line, each in a fresh process.

    python benchmarks/import_time.py [--repeats 7] [--json PATH]

Each case is a fresh ``python -c CODE`` (or the ``improved-gan`` entry point); the rounds are interleaved (every
case once per round) and the table shows the median wall time and its time above a bare ``python -c pass``.
Writes JSON (default ``benchmarks/results/import_time.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import torch": [sys.executable, "-c", "import torch"],
    "import improved_gan": [sys.executable, "-c", "import improved_gan"],
    "from improved_gan import MinibatchDiscrimination": [
        sys.executable,
        "-c",
        "from improved_gan import MinibatchDiscrimination",
    ],
    "from improved_gan import inception_score": [
        sys.executable,
        "-c",
        "from improved_gan import inception_score",
    ],
    "all of improved_gan.__all__": [
        sys.executable,
        "-c",
        "import improved_gan as g; [getattr(g, n) for n in g.__all__]",
    ],
    "improved-gan presets": [sys.executable, "-m", "improved_gan", "presets"],
    "improved-gan presets fmnist-gan": [sys.executable, "-m", "improved_gan", "presets", "fmnist-gan"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "import_time.json"))
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, cmd in CASES.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    rows = []
    print(f"{'case':<52} {'median s':>9} {'above python':>13}")
    for name, values in times.items():
        median = statistics.median(values)
        rows.append({"case": name, "median_s": median, "above_python_s": median - base, "all_s": values})
        print(f"{name:<52} {median:>9.3f} {median - base:>13.3f}")
    load = os.getloadavg()
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs, {args.repeats} rounds"
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "loadavg": load, "repeats": args.repeats}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
