"""How long `finetune --help` takes, as a user starts it (`python -m finetune --help` in a fresh
process): prints the median of N runs and the import time of the CLI module. Target: < 0.5 s.

    python scripts/benchmarks/bench_startup.py --runs 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from measure import run_measured

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    commands = {
        "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
        "finetune --help": [sys.executable, "-m", "finetune", "--help"],
        "finetune config validate": [
            sys.executable, "-m", "finetune", "config", "validate", str(ROOT / "finetune/recipes/quickstart.yaml")
        ],
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.runs):  # interleaved, so load from other processes hits all alike
        for name, cmd in commands.items():
            times[name].append(run_measured(cmd, env)[:2])  # (wall s, CPU s)
    for name, pairs in times.items():
        wall, cpu = [w for w, _ in pairs], [c for _, c in pairs]
        print(f"{name:38s} median {statistics.median(wall):.3f} s wall (min {min(wall):.3f}, "
              f"max {max(wall):.3f}), {statistics.median(cpu):.3f} s CPU, n={len(pairs)}")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, finetune.cli; print(sorted(m for m in "
         "('torch', 'transformers', 'datasets', 'peft', 'accelerate') if m in sys.modules))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    print(f"heavy modules imported by finetune.cli: {heavy}")


if __name__ == "__main__":
    main()
