"""Offline plan wall time per stack, as a ratio to importing the SDKs it cannot avoid.

    python bench/plan.py [--repeat N]

Both are measured in this run, as fresh processes, interleaved, and the median is compared, so the
ratio holds on any machine. Aim (issue #2): at most 2x.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = [sys.executable, "-c", "import pulumi, pulumi_aws, pulumi_github"]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    wall(BASELINE)  # warm the file cache so neither side pays for the first read from disk
    samples: dict[str, list[float]] = {"import baseline": []}
    stacks = ("dev", "prod")
    for _ in range(args.repeat):
        samples["import baseline"].append(wall(BASELINE))
        for stack in stacks:
            command = [sys.executable, "-m", "infra", "plan", "--stack", stack, "--json"]
            samples.setdefault(f"plan {stack}", []).append(wall(command))

    baseline = statistics.median(samples["import baseline"])
    print(f"{'measurement':<18} {'median s':>9} {'ratio':>7}   (n={args.repeat})")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<18} {median:>9.2f} {median / baseline:>6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
