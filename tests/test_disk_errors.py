"""Refused writes are one line naming the path and the cause, and lose nothing: a disk that
fills up (a real small tmpfs), no permission, a file where a directory should be, and a second
Ctrl-C while a checkpoint is being saved."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import QUIET_ENV, ROOT
from safetensors.torch import load_file
from test_bad_inputs import base_config, run_main

from finetune.storage import checkpoint

from finetune.storage import run_dir
from finetune.storage.disk_errors import write_errno


def _config(tmp_path, model, files, **training):
    cfg = base_config(tmp_path, model, files)
    cfg["training"].update(training)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env() -> dict:
    env = {**os.environ, **QUIET_ENV}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_disk_full_on_a_real_tmpfs_keeps_the_previous_checkpoint(tmp_path, tiny_bert, sentiment_files):
    """The run directory sits on a 20 MB tmpfs (in a private mount namespace): the step-1
    checkpoint (~13 MB of weights and optimizer state) fits, step 2 does not. Then a run on a
    3 MB tmpfs, whose saved model does not fit."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a private mount namespace")
    mnt, small, out = tmp_path / "mnt", tmp_path / "small", tmp_path / "out"
    for folder in (mnt, small, out):
        folder.mkdir()
    cfg = _config(tmp_path, tiny_bert, sentiment_files, output_dir=str(mnt / "run"), max_steps=3, save_every=1)
    train = f"{shlex.quote(sys.executable)} -m finetune train --config {cfg}"
    script = f"""
mount -t tmpfs -o size=20m tmpfs {mnt} || exit 99
{train} >/dev/null 2>{out}/full.err; echo $? >{out}/full.rc
cp -r {mnt}/run/checkpoints {out}/after-full
mount -o remount,size=64m {mnt}
{train} --resume >/dev/null 2>{out}/resume.err; echo $? >{out}/resume.rc
find {mnt}/run -name '.tmp-*' >{out}/leftovers
cp {mnt}/run/metrics.jsonl {out}/
mount -t tmpfs -o size=3m tmpfs {small} || exit 99
{train} training.output_dir={small}/run training.save_every=null >/dev/null 2>{out}/model.err
echo $? >{out}/model.rc
ls -A {small}/run >{out}/model-run-files
"""
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=600)
    if result.returncode == 99 or not (out / "full.rc").is_file():
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {result.stderr.strip()[:200]}")

    stderr = (out / "full.err").read_text()
    assert (out / "full.rc").read_text().strip() == "2" and "Traceback" not in stderr, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: no space left on device while writing ") and "step-000002" in line
    assert "intact" in line
    kept = out / "after-full"
    assert sorted(p.name for p in kept.iterdir()) == ["step-000001"]  # nothing half-written
    assert json.loads((kept / "step-000001" / "train_state.json").read_text())["step"] == 1
    assert load_file(kept / "step-000001" / "model.safetensors")  # loadable, not truncated

    resume_err = (out / "resume.err").read_text()
    assert (out / "resume.rc").read_text().strip() == "0", resume_err
    assert (out / "leftovers").read_text() == ""
    steps = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["type"] == "train"]
    assert steps == [3]  # log_every 10: the last step is logged, once

    # On 3 MB not even the first model (4 MB) fits: safetensors' own error, the same one line.
    model_err = (out / "model.err").read_text()
    assert (out / "model.rc").read_text().strip() == "2" and "Traceback" not in model_err, model_err
    assert model_err.strip().splitlines()[-1].startswith(f"error: no space left on device while writing '{small}/run/")
    assert sorted((out / "model-run-files").read_text().split()) == [
        ".finetune-lock", ".finetune-run", "config.yaml", "metrics.jsonl"]  # no half-written model


def test_permission_denied_names_the_file(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    """Root ignores file modes, so EACCES is raised by a patched open() in the metrics writer."""
    import finetune.training.tracking

    def refused(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(finetune.training.tracking, "open", refused, raising=False)
    cfg = _config(tmp_path, tiny_bert, sentiment_files, max_steps=1)
    code, stderr = run_main(["train", "--config", str(cfg)], capsys, monkeypatch)
    line = stderr.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in stderr
    assert line == (f"error: permission denied while writing '{tmp_path / 'run' / 'metrics.jsonl'}'; fix its "
                    "permissions, or set training.output_dir to a directory you may write")


def test_a_file_where_checkpoints_should_be_is_named(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    begin = checkpoint._begin

    def file_in_the_way(target):
        target.parent.parent.mkdir(parents=True, exist_ok=True)
        target.parent.write_text("a file, not the checkpoints directory")
        return begin(target)

    monkeypatch.setattr(checkpoint, "_begin", file_in_the_way)
    cfg = _config(tmp_path, tiny_bert, sentiment_files, max_steps=2, save_every=1)
    code, stderr = run_main(["train", "--config", str(cfg)], capsys, monkeypatch)
    line = stderr.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in stderr
    assert line.startswith(f"error: not a directory while writing '{tmp_path / 'run' / 'checkpoints'}'")
    assert "move or rename that file" in line


@pytest.mark.parametrize("error, code", [
    (OSError(errno.ENOSPC, "No space left on device", "x"), errno.ENOSPC),
    (RuntimeError("Error while serializing: I/O error: Read-only file system (os error 30)"), errno.EROFS),
    (OSError(errno.ENOENT, "No such file or directory", "x"), None),  # not a refused write
    (ValueError("unrelated"), None),
])
def test_write_errno_reads_the_cause(error, code):
    assert write_errno(error) == code


def test_second_ctrl_c_during_a_save_abandons_it_and_leaves_a_resumable_run(
    tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch
):
    run = tmp_path / "run"
    cfg = _config(tmp_path, tiny_bert, sentiment_files, max_steps=4, save_every=1)
    stall = {checkpoint.STALL_ENV: "step-000002:60"}
    proc = subprocess.Popen([sys.executable, "-m", "finetune", "train", "--config", str(cfg)], cwd=ROOT,
                            env={**_env(), **stall}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = run / "checkpoints" / ".tmp-step-000002" / run_dir.STATE_FILE
    try:
        deadline = time.monotonic() + 240
        while not partial.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert partial.is_file(), "the save of step 2 never got under way"
        proc.send_signal(signal.SIGINT)  # first: finish the step, then save (the save is stalled)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # second: stop now
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("stopped: interrupted at once (a save under way, if any, was abandoned")
    assert "step-000001" in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000001"]
    command = shlex.split(line.split("continue with: ")[1])
    code, stderr = run_main([*command[1:], "training.max_steps=2"], capsys, monkeypatch)  # as advised
    assert code == 0, stderr
    assert not list(run.rglob(".tmp-*"))


def test_next_start_clears_what_a_cut_save_left_and_restores_a_displaced_model(tmp_path):
    run = tmp_path / "run"
    for leftover in ("checkpoints/.tmp-step-000003", ".tmp-model", ".tmp-best", ".old-model"):
        (run / leftover).mkdir(parents=True)
        (run / leftover / "weights").write_text(leftover)
    (run / "best").mkdir()
    (run / ".old-best").mkdir()  # beside a complete `best`: a finished publish's leftover
    checkpoint.remove_partial(run, ("model", "best"))
    assert sorted(p.name for p in run.iterdir()) == ["best", "checkpoints", "model"]
    assert (run / "model" / "weights").read_text() == ".old-model"  # killed between the two renames
    assert not list(run.rglob(".tmp-*"))
