"""Peak memory of LoRA against a full fine-tune of the same model, through the real CLI.

Each run is a fresh `python -m finetune train` process; its peak RSS comes from the kernel
(the rusage wait4 reports for the finished child), so library imports count the same on both
sides.

    python scripts/benchmarks/bench_lora_memory.py --config multi30k-smollm2-lora --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from measure import run_measured


def peak_rss_mib(config: str, lora: bool, steps: int, extra: list[str]) -> tuple[float, float]:
    """Run one training process; return (its peak RSS in MiB, wall seconds)."""
    with tempfile.TemporaryDirectory() as out:
        wall, _, peak, _ = run_measured(
            [sys.executable, "-m", "finetune", "train", "--config", config,
             f"lora.enabled={str(lora).lower()}", f"training.max_steps={steps}",
             "training.eval_before_training=false", "data.max_eval_samples=8",
             f"training.output_dir={out}/run", *extra],
            dict(os.environ),
        )
    return peak, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="extra dotted overrides for both runs")
    args = parser.parse_args()
    lora, lora_wall = peak_rss_mib(args.config, True, args.steps, args.overrides)
    full, full_wall = peak_rss_mib(args.config, False, args.steps, args.overrides)
    result = {"config": args.config, "steps": args.steps, "lora_peak_rss_mib": round(lora),
              "full_peak_rss_mib": round(full), "ratio": round(lora / full, 3),
              "lora_wall_s": round(lora_wall, 1), "full_wall_s": round(full_wall, 1)}
    print(f"peak RSS: LoRA {lora:.0f} MiB, full {full:.0f} MiB, ratio {lora / full:.3f} (target <= 0.8)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
