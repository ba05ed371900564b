"""What a person watching a run sees: plain lines in a log file, a bar on a terminal with the
evaluation lines above it, never glued onto it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import QUIET_ENV, ROOT, main_in_process, sentiment_yaml, write_config

LINE = re.compile(r"^\d\d:\d\d:\d\d step (\d+)/8 epoch [\d.]+ loss [\d.]+ lr [\d.e+-]+ samples/s [\d.]+ mfu [\d.]+% left \d+m\d\ds$")


def _config(tmp_path, tiny_bert, sentiment_files):
    return write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
training: {{output_dir: {tmp_path / 'run'}, max_steps: 8, batch_size: 16, log_every: 2, eval_every: 4}}
""")


def test_a_log_file_gets_one_plain_line_per_log_step(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    code, out, err = main_in_process(["train", "--config", str(_config(tmp_path, tiny_bert, sentiment_files))],
                                     capsys, monkeypatch)
    assert code == 0, err
    steps = [int(m.group(1)) for line in out.splitlines() if (m := LINE.match(line))]
    assert steps == [2, 4, 6, 8], out
    assert [line for line in out.splitlines() if line.startswith("eval step")] == [
        line for line in out.splitlines() if line.startswith("eval ") and "whole" not in line]
    # Each evaluation says when it starts: one that generates can run for many silent minutes.
    assert re.findall(r"^\d\d:\d\d:\d\d eval step (\d+): scoring 120 rows$", out, re.M) == ["4", "8"], out
    assert "\r" not in out + err and "Training" not in err


def test_a_terminal_gets_a_bar_with_evaluations_above_it(tmp_path, tiny_bert, sentiment_files):
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    # A terminal 100 columns wide: tqdm draws nothing on one of width 0, a new pty's size.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "finetune", "train", "--config", str(_config(tmp_path, tiny_bert, sentiment_files))],
        stdout=follower, stderr=follower, env=env, cwd=ROOT)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=300) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "Training" in screen and "8/8" in screen  # the bar
    assert not LINE.search(screen.replace("\r", "\n"))  # no plain log lines on a terminal
    for line in re.findall(r"[^\r\n]*eval step \d[^\r\n]*", screen):
        assert line.startswith("eval step"), repr(line)  # on a line of its own, not after the bar
