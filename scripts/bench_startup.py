"""How long `finetune --help` takes, as a user starts it (`python -m finetune --help` in a fresh
process): prints the median of N runs and the import time of the CLI module. Target: < 0.5 s.

    python scripts/bench_startup.py --runs 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    commands = {
        "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
        "finetune --help": [sys.executable, "-m", "finetune", "--help"],
        "finetune config validate": [
            sys.executable, "-m", "finetune", "config", "validate", str(ROOT / "configs/quickstart.yaml")
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):  # interleaved, so load from other processes hits all alike
        for name, cmd in commands.items():
            times[name].append(timed(cmd, env))
    for name, values in times.items():
        print(f"{name:38s} median {statistics.median(values):.3f} s  "
              f"(min {min(values):.3f}, max {max(values):.3f}, n={len(values)})")
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, finetune.cli; print(sorted(m for m in "
         "('torch', 'transformers', 'datasets', 'peft', 'accelerate') if m in sys.modules))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    print(f"heavy modules imported by finetune.cli: {heavy}")


if __name__ == "__main__":
    main()
