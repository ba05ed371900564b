"""Nothing lost: a run killed at any moment resumes to the same weights and metrics as one that
was never interrupted; Ctrl-C/SIGTERM and a NaN loss stop with a checkpoint to resume from."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import QUIET_ENV, ROOT, run_cli, sentiment_yaml, write_config

# Fields that measure the machine (speed, memory, wall time), not the training.
TIMING = {"time", "samples_per_s", "tokens_per_s", "peak_memory_mb", "eval_seconds", "first_step_seconds", "mfu"}


def _config(path: Path, model, files, out: Path, **training) -> Path:
    settings = {"max_steps": 14, "batch_size": 8, "lr": 1.0e-3, "log_every": 1, "save_every": 3,
                "keep_checkpoints": 2, **training}
    lines = "\n".join(f"  {k}: {v}" for k, v in settings.items() if k != "lora")
    # The first two lines continue sentiment_yaml's data section.
    return write_config(path, sentiment_yaml(model, files) + f"""  max_train_samples: 40  # 5 batches an epoch: the runs cross epoch boundaries
  max_eval_samples: 24
lora:
  enabled: {str(training.get('lora', False)).lower()}
training:
  output_dir: {out}
{lines}
""")


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, **QUIET_ENV, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "finetune", *args], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before the point to interrupt it:\n"
                        f"{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the run to make progress")
        time.sleep(0.02)


def _logged_step(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return 0
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]
    return max(steps, default=0)


def _metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    assert files, f"no safetensors in {model_dir}"
    return load_file(files[0])


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.mark.parametrize(
    "variant, kill",
    [
        ({}, "at-random-step"),
        ({"lora": True, "gradient_accumulation_steps": 2, "max_steps": 8, "save_every": 2}, "during-write"),
        ({"optimizer": "adafactor", "lr": 1.0e-2, "max_steps": 8}, "at-random-step"),  # its factored state too
        ({"ema_decay": 0.9, "max_steps": 8}, "at-random-step"),  # the weight average goes on, not anew
    ],
    ids=["full", "lora-accum", "adafactor", "weight-average"],
)
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, tiny_bert, sentiment_files, variant, kill):
    reference = tmp_path / "reference"
    cfg = _config(tmp_path / "ref.yaml", tiny_bert, sentiment_files, reference, **variant)
    result = run_cli("train", "--config", str(cfg))
    assert result.returncode == 0, result.stderr

    run = tmp_path / "killed"
    checkpoints = run / "checkpoints"
    cfg = _config(tmp_path / "killed.yaml", tiny_bert, sentiment_files, run, **variant)
    max_steps, every = variant.get("max_steps", 14), variant.get("save_every", 3)
    chance = random.Random(f"{variant}")
    if kill == "at-random-step":
        kill_after = chance.randint(every + 1, max_steps - 2)
        proc = _start("train", "--config", str(cfg))
        _wait_for(lambda: _logged_step(run) >= kill_after, proc)
    else:  # a test hook holds a complete checkpoint just before its rename
        stalled = f"step-{every * chance.randint(2, max_steps // every - 1):06d}"
        proc = _start("train", "--config", str(cfg), env={"FINETUNE_TEST_STALL_CHECKPOINT": f"{stalled}:120"})
        _wait_for(lambda: (checkpoints / f".tmp-{stalled}" / "train_state.json").is_file(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model").exists(), "the run finished before it was killed"
    if kill == "during-write":
        newest = max(p.name for p in checkpoints.iterdir() if not p.name.startswith("."))
        assert newest == f"step-{int(stalled[5:]) - every:06d}"  # the previous one, complete
        assert _weights(checkpoints / newest)

    result = run_cli("train", "--config", str(cfg), "--resume")
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout
    assert not any(p.name.startswith(".") for p in checkpoints.iterdir())  # the stray .tmp is gone

    difference = _max_difference(_weights(reference / "model"), _weights(run / "model"))
    assert difference == 0.0, f"resumed weights differ by up to {difference}"
    assert _metrics(run) == _metrics(reference)  # every line once, same losses and scores
    assert json.loads((run / "best" / "best.json").read_text()) == json.loads(
        (reference / "best" / "best.json").read_text()
    )


def test_same_config_and_seed_give_the_same_metrics(tmp_path, tiny_bert, sentiment_files):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        cfg = _config(tmp_path / f"{run.name}.yaml", tiny_bert, sentiment_files, run,
                      max_steps=4, save_every="null")
        result = run_cli("train", "--config", str(cfg))
        assert result.returncode == 0, result.stderr
    first, second = (_metrics(run) for run in runs)
    assert [r["type"] for r in first].count("train") == 4
    assert first == second
    assert _max_difference(_weights(runs[0] / "model"), _weights(runs[1] / "model")) == 0.0


@pytest.mark.parametrize(
    "signum, code, lora", [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)], ids=["term", "int-lora"]
)
def test_signal_finishes_the_step_saves_and_says_how_to_resume(
    tmp_path, tiny_bert, sentiment_files, signum, code, lora
):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, max_steps=100,
                  save_every="null", eval_each_epoch="false", lora=lora)
    proc = _start("train", "--config", str(cfg))
    _wait_for(lambda: _logged_step(run) >= 2, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    saved = [p for p in (run / "checkpoints").iterdir()]
    assert len(saved) == 1 and saved[0].name.startswith("step-")
    stopped_at = json.loads((saved[0] / "train_state.json").read_text())["step"]
    assert stopped_at == _logged_step(run)  # the step under way was finished, then saved
    command = re.search(r"continue with: (finetune train .*--resume)", stderr)
    assert command, stderr
    if signum == signal.SIGTERM:  # the printed command works as given
        args = shlex.split(command.group(1))[1:] + ["training.max_steps=" + str(stopped_at + 2)]
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        steps = [r["step"] for r in _metrics(run) if r["type"] == "train"]
        assert steps == list(range(1, stopped_at + 3))
    else:  # a checkpoint (here a LoRA adapter) loads for evaluation like a finished model
        result = run_cli("eval", str(run), "--checkpoint", saved[0].name)
        assert result.returncode == 0, result.stderr
        scored = json.loads((run / f"eval_validation.{saved[0].name}.json").read_text())
        assert scored["samples"] == 24 and scored["weights"] == f"checkpoints/{saved[0].name}"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_bert, sentiment_files):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, lr="1.0e+30",
                  max_grad_norm="null", save_every=1, keep_checkpoints=1)
    result = run_cli("train", "--config", str(cfg))
    assert result.returncode == 2
    match = re.search(r"NaN or infinite at step (\d+)", result.stderr)
    assert match, result.stderr
    bad_step = int(match.group(1))
    saved = [p.name for p in (run / "checkpoints").iterdir()]
    assert saved == [f"step-{bad_step - 1:06d}"]  # the last one saved, nothing after it
    last_line = result.stderr.strip().splitlines()[-1]  # after the progress bar
    # Its weights gave the NaN loss: the advice does not call it good (trust round 2, item 10).
    assert last_line.startswith("stopped: ") and f"{saved[0]} holds weights that already diverged" in last_line
    assert "Last good checkpoint" not in last_line and "start again with a lower learning rate" in last_line


def test_on_nan_skip_drops_bad_batches_and_finishes(tmp_path, tiny_bert, sentiment_files):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, lr="1.0e+30",
                  max_grad_norm="null", max_steps=4, save_every="null", on_nan="skip")
    result = run_cli("train", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    train = [r for r in _metrics(run) if r["type"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert sum(r.get("skipped_nonfinite", 0) for r in train) >= 1


def test_a_checkpoint_from_before_a_new_key_resumes_at_its_default(tmp_path):
    """An older finetune's config lacks keys added since (it trained as their defaults do); the
    same key set to another value is still a different run."""
    import yaml

    from finetune.configuration.config import RunConfig
    from finetune.errors import ConfigError
    from finetune.training.train_state import check_compatible

    raw = {"task": "sentiment", "model": {"name_or_path": "m"}, "data": {"files": {"train": "t.jsonl"}}}
    saved = RunConfig.model_validate(raw).model_dump(mode="json")
    del saved["training"]["label_smoothing"]  # written before the key existed
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    (tmp_path / "train_state.json").write_text(json.dumps({"step": 1, "steps_per_epoch": 1, "data_sha256": {}}))
    check_compatible(RunConfig.model_validate(raw), tmp_path, {})
    raw["training"] = {"label_smoothing": 0.1}
    with pytest.raises(ConfigError, match="training.label_smoothing"):
        check_compatible(RunConfig.model_validate(raw), tmp_path, {})


@pytest.mark.parametrize("header, recorded, world, refused", [
    ("# 2 process(es) x batch_size 16 x gradient_accumulation_steps 1 = global batch 32\n", None, "1", True),
    ("# 2 process(es) x batch_size 16 x gradient_accumulation_steps 1 = global batch 32\n", None, "2", False),
    ("", None, "2", False),  # older still: the count is unknown, so the resume is allowed
    ("# 1 process(es) x batch_size 16 x gradient_accumulation_steps 1 = global batch 16\n", 2, "2", False),
    ("", 1, "2", True),
])
def test_a_checkpoint_resumes_only_on_the_process_count_it_was_saved_on(
        tmp_path, monkeypatch, header, recorded, world, refused):
    """train_state.json records the count; a checkpoint written before it did falls back on the
    run's config.yaml header (`# N process(es) x ...`), and without one the count is unknown."""
    import yaml

    from finetune.configuration.config import RunConfig
    from finetune.errors import ConfigError
    from finetune.training.train_state import check_compatible

    raw = {"task": "sentiment", "model": {"name_or_path": "m"}, "data": {"files": {"train": "t.jsonl"}}}
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000001"
    checkpoint.mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text(header + yaml.safe_dump(raw))
    (checkpoint / "config.yaml").write_text(yaml.safe_dump(RunConfig.model_validate(raw).model_dump(mode="json")))
    state = {"step": 1, "steps_per_epoch": 1, "data_sha256": {}}
    (checkpoint / "train_state.json").write_text(json.dumps(state if recorded is None else {**state, "processes": recorded}))
    monkeypatch.setenv("WORLD_SIZE", world)
    if refused:
        with pytest.raises(ConfigError, match=f"on {recorded or 2} process\\(es\\) and this one has {world}"):
            check_compatible(RunConfig.model_validate(raw), checkpoint, {})
    else:
        check_compatible(RunConfig.model_validate(raw), checkpoint, {})
