"""Run one command to completion the way a user starts it, and measure it: the one process
measurement the benchmark scripts share."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
