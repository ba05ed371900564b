"""metrics.jsonl (always) plus the trackers named in `training.report_to` (trackers.py):
one JSON object per logged training step or evaluation, the same numbers sent to each."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

_NOT_SCALARS = {"type", "step", "epoch", "time", "split"}


class MetricsLog:
    def __init__(self, path: Path, enabled: bool, trackers: list | None = None):
        self.path = path
        self.enabled = enabled
        self.trackers = trackers or []
        self.start = time.time()

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {k: _clean(v) for k, v in record.items()}
        record.setdefault("time", round(time.time() - self.start, 3))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        scalars = {
            f"{record['type']}/{k}": v for k, v in record.items()
            if k not in _NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        for tracker in self.trackers:
            tracker.log(scalars, record["step"])

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    if isinstance(value, float):
        return round(value, 6)
    return value


def read_metrics(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
