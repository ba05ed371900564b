"""Run one command to completion the way a user starts it, and measure it: the one process
measurement the benchmark scripts share."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_measured(cmd: list[str], env: dict) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MiB of the process tree, stdout and stderr). CPU seconds hardly
    move when other jobs share the cores, so they back up wall times on a busy machine."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        # wait4 gives this child's own rusage (its maxrss covers its waited-for children too).
        _, status, usage = os.wait4(proc.pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if returncode != 0:
        raise SystemExit(f"failed ({returncode}): {' '.join(map(str, cmd))}\n{text[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def train_records(run: Path) -> list[dict]:
    """The training lines of a run's metrics.jsonl, in order (one per logged window)."""
    import json

    records = (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
    return [r for r in records if r["type"] == "train"]


def train_windows(run: Path, batch_size: int) -> list[dict]:
    """The run's training log as windows between log lines: examples, seconds, tokens and the
    logged MFU of each (a window covers the steps since the previous line, at full batches)."""
    windows, previous = [], 0
    for r in train_records(run):
        n = (r["step"] - previous) * batch_size
        previous = r["step"]
        seconds = n / r["samples_per_s"]
        windows.append({"samples": n, "seconds": seconds, "tokens": r["tokens_per_s"] * seconds,
                        "mfu": r.get("mfu", 0.0), "first_step_seconds": r.get("first_step_seconds")})
    return windows


def window_totals(windows: list[dict]) -> dict:
    """Samples/s, tokens/s and time-weighted MFU over the given windows."""
    seconds = sum(w["seconds"] for w in windows)
    return {"train_seconds": seconds, "samples_per_s": sum(w["samples"] for w in windows) / seconds,
            "tokens_per_s": sum(w["tokens"] for w in windows) / seconds,
            "mfu": sum(w["mfu"] * w["seconds"] for w in windows) / seconds}
