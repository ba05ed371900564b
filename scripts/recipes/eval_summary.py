"""Print the evaluations a run logged (before training, after each epoch...) as a table.

    python scripts/recipes/eval_summary.py RUN_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SKIP = {"type", "split", "time", "eval_seconds"}


def main(run: Path) -> None:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["type"] == "eval"]
    if not evals:
        raise SystemExit(f"{run}: no evaluation logged yet")
    keys = [k for k in evals[0] if k not in SKIP]
    print("\t".join(keys))
    for r in evals:
        print("\t".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
