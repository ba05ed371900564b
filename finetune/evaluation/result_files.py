"""A scoring's result files in a run (or `eval --model`'s) directory: eval_<split>[.<weights>].json
(the metrics) and predictions_<split>[.<weights>].jsonl (a record per row), written by training's
final evaluation and by `finetune eval`."""

from __future__ import annotations

import json
from pathlib import Path

from finetune.storage import run_dir as rd


def write_results(run: Path, split: str, metrics: dict, records: list[dict], weights: str | None = None) -> None:
    # Whole files or none: `eval --checkpoint` may write them beside a training run, and a
    # reader (report, a second eval) must never see half of one.
    from finetune.storage.atomic_write import write_text_atomic

    write_text_atomic(run / rd.eval_file(split, weights), json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(run / rd.predictions_file(split, weights),
                      "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
