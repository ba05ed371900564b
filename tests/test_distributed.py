"""Data-parallel training on CPU: `torchrun --nproc_per_node 2` (gloo) gives the same result as
one process with the same global batch, every example is scored exactly once, and only rank 0
writes and reports.

Why the runs can differ at all, and the tolerance: with `group_by_length: false` the seeded
sampler yields the same order for both runs, and Accelerate hands rank r the r-th batch of 8 of
each pair, so every optimizer step sees the same 16 examples. Dropout is switched off because
each rank draws its own masks. What remains is float summation order (DDP averages two means of
8 instead of one mean of 16), about 1e-7 relative; we allow 1e-4 absolute on losses and
probabilities, and accuracy may move by at most one example of 120 should a probability sit on
the decision boundary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUIET_ENV, ROOT, run_cli, write_config
from test_train_state import _config as _resumable_config
from test_train_state import _max_difference, _metrics, _wait_for, _weights

TOL = 1e-4


def _config(tmp_path, model_dir, files) -> Path:
    return write_config(tmp_path / "ddp.yaml", f"""
task: sentiment
model:
  name_or_path: {model_dir}
  config_overrides: {{hidden_dropout_prob: 0.0, attention_probs_dropout_prob: 0.0}}
data:
  files:
    train: {files['train']}
    validation: {files['validation']}
  max_length: 32
training:
  max_steps: 10
  save_every: 5
  batch_size: 8
  lr: 3.0e-3
  log_every: 5
  group_by_length: false
eval:
  batch_size: 32
""")


def _launch(nproc: int, args: tuple[str, ...], env: dict | None = None) -> dict:
    """Popen arguments for `torchrun --nproc_per_node NPROC -m finetune ARGS`."""
    launcher = Path(sys.executable).with_name("torchrun")
    cmd = [str(launcher)] if launcher.exists() else [sys.executable, "-m", "torch.distributed.run"]
    full_env = {**os.environ, **QUIET_ENV, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return dict(args=[*cmd, "--standalone", "--nproc_per_node", str(nproc), "-m", "finetune", *args],
                cwd=ROOT, env=full_env, text=True)


def _torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(**_launch(nproc, args), capture_output=True, timeout=600)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_processes_match_one(tmp_path, tiny_bert, sentiment_files):
    cfg = _config(tmp_path, tiny_bert, sentiment_files)
    two = _torchrun(2, "train", "--config", str(cfg), f"training.output_dir={tmp_path / 'two'}")
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_cli("train", "--config", str(cfg), f"training.output_dir={tmp_path / 'one'}",
                  "training.batch_size=16", env={"OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stderr

    # Only rank 0 reports: one parameter line, one result line, one progress bar.
    assert two.stdout.count("run saved to") == 1
    assert two.stdout.count("parameters:") == 1

    log_one, log_two = _lines(tmp_path / "one/metrics.jsonl"), _lines(tmp_path / "two/metrics.jsonl")
    assert [r["type"] for r in log_two] == [r["type"] for r in log_one]  # no rank wrote twice
    for a, b in zip(log_one, log_two):
        assert a["step"] == b["step"]
        assert b["loss"] == pytest.approx(a["loss"], abs=TOL)

    ev_one = json.loads((tmp_path / "one/eval_validation.json").read_text())
    ev_two = json.loads((tmp_path / "two/eval_validation.json").read_text())
    assert ev_one["samples"] == ev_two["samples"] == 120  # split size, no padded duplicates
    assert ev_two["loss"] == pytest.approx(ev_one["loss"], abs=TOL)
    assert abs(ev_two["accuracy"] - ev_one["accuracy"]) <= 1 / 120 + 1e-9

    # One prediction per example, in the split's order, with matching probabilities.
    texts = [json.loads(line)["text"] for line in Path(sentiment_files["validation"]).read_text().splitlines()]
    pred_one = _lines(tmp_path / "one/predictions_validation.jsonl")
    pred_two = _lines(tmp_path / "two/predictions_validation.jsonl")
    assert [p["text"] for p in pred_two] == [p["text"] for p in pred_one] == texts
    for a, b in zip(pred_one, pred_two):
        if a["predicted"] == b["predicted"]:
            assert b["probability"] == pytest.approx(a["probability"], abs=TOL)
        else:
            assert abs(a["probability"] - 0.5) < TOL  # a tie broken the other way

    # Both processes wrote into the checkpoint the main one published: each its RNG state.
    def listed(run: str) -> set[str]:
        return set(json.loads((tmp_path / run / "checkpoints/step-000010/manifest.json").read_text())["files"])

    assert {"rng_0.safetensors", "rng_1.safetensors"} <= listed("two")
    assert "rng_1.safetensors" not in listed("one")
    assert not list((tmp_path / "two").rglob(".tmp-*"))


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> Path:
    from tiny_models import build_tiny_generator

    return build_tiny_generator("t5", tmp_path_factory.mktemp("tiny-t5"))


def test_generation_scores_every_example_once(tmp_path, tiny_t5):
    """9 eval rows in batches of 2 on 2 processes: Accelerate pads the last round with copies of
    the first rows. The 2-process evaluation at the end of training must score each row once and
    agree with `finetune eval` of the same saved model on one process."""
    from tiny_models import corpus

    texts = [t for t in corpus() if len(t.split()) >= 5][:25]

    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps({"en": t, "de": " ".join(reversed(t.split()))}) + "\n"
                                for t in rows), encoding="utf-8")
        return path

    cfg = write_config(tmp_path / "mt.yaml", f"""
task: translation
model:
  name_or_path: {tiny_t5}
data:
  files:
    train: {write('train.jsonl', texts[:16])}
    validation: {write('validation.jsonl', texts[16:])}
  text_column: en
  target_column: de
  max_source_length: 32
  max_target_length: 16
training:
  output_dir: {tmp_path / 'run'}
  max_steps: 2
  batch_size: 4
  lr: 1.0e-2
  eval_each_epoch: false
  group_by_length: false
eval:
  batch_size: 2
  generation:
    max_new_tokens: 6
""")
    two = _torchrun(2, "train", "--config", str(cfg))
    assert two.returncode == 0, two.stderr[-3000:]
    run = tmp_path / "run"
    ev_two = json.loads((run / "eval_validation.json").read_text())
    pred_two = _lines(run / "predictions_validation.jsonl")
    one = run_cli("eval", str(run), env={"OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stderr
    ev_one = json.loads((run / "eval_validation.json").read_text())
    pred_one = _lines(run / "predictions_validation.jsonl")

    assert ev_two["samples"] == ev_one["samples"] == 9
    assert [p["source"] for p in pred_two] == [p["source"] for p in pred_one] == texts[16:]
    assert [p["generated"] for p in pred_two] == [p["generated"] for p in pred_one]
    assert ev_two["bleu"] == ev_one["bleu"]
    assert ev_two["loss"] == pytest.approx(ev_one["loss"], abs=1e-5)  # padded copies weigh nothing


def _kill_launch(launcher: subprocess.Popen) -> None:
    """SIGKILL the launcher and every worker, as losing the machine would: torchrun starts each
    worker in a session of its own, so killing the launcher's process group would miss them."""
    import psutil

    workers = psutil.Process(launcher.pid).children(recursive=True)
    launcher.kill()
    for worker in workers:
        worker.kill()
    launcher.wait()
    psutil.wait_procs(workers, timeout=30)


@pytest.mark.slow  # three 2-process launches: 96 s on a busy 2-core machine (52 s of CPU)
def test_killed_run_resumes_on_two_processes_bit_for_bit(tmp_path, tiny_bert, sentiment_files):
    """2 processes, 3 steps an epoch (40 rows, batches of 8 per process), dropout on: each
    process's RNG, the optimizer and the position mid-epoch come back exactly."""
    cfg = _resumable_config(tmp_path / "run.yaml", tiny_bert, sentiment_files, tmp_path / "reference",
                            max_steps=6, save_every=2)
    reference = _torchrun(2, "train", "--config", str(cfg))
    assert reference.returncode == 0, reference.stderr[-3000:]

    run = tmp_path / "killed"
    checkpoints = run / "checkpoints"
    # A test hook holds the main process with checkpoint 4 complete but not yet published; the
    # other process waits for it. Killed there, the run resumes from step 2, 2 batches into epoch 0.
    launcher = subprocess.Popen(
        **_launch(2, ("train", "--config", str(cfg), f"training.output_dir={run}"),
                  env={"FINETUNE_TEST_STALL_CHECKPOINT": "step-000004:120"}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    _wait_for(lambda: (checkpoints / ".tmp-step-000004" / "manifest.json").is_file(), launcher)
    _kill_launch(launcher)
    assert sorted(p.name for p in checkpoints.iterdir()) == [".tmp-step-000004", "step-000002"]
    assert not (run / "model").exists()

    resumed = _torchrun(2, "train", "--config", str(cfg), f"training.output_dir={run}", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("resuming from") == 1  # said once, by the main process
    assert "(step 2, epoch 0, 2 batches into it)" in resumed.stdout
    assert not any(p.name.startswith(".") for p in checkpoints.iterdir())

    difference = _max_difference(_weights(tmp_path / "reference" / "model"), _weights(run / "model"))
    assert difference == 0.0, f"resumed weights differ by up to {difference}"
    assert _metrics(run) == _metrics(tmp_path / "reference")  # every line once, same losses and scores
    assert json.loads((run / "best" / "best.json").read_text()) == json.loads(
        (tmp_path / "reference" / "best" / "best.json").read_text()
    )


def test_a_signal_to_one_process_stops_every_process_after_the_same_step(tmp_path, tiny_bert, sentiment_files):
    """SIGTERM to one worker only (a scheduler, `kill PID`): alone, it would save while the
    other trained on, both waiting on each other for ever. Both stop after one step and save it."""
    import psutil

    run = tmp_path / "run"
    cfg = _resumable_config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, max_steps=200,
                            save_every="null", eval_each_epoch="false")
    launcher = subprocess.Popen(**_launch(2, ("train", "--config", str(cfg))),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: (run / "metrics.jsonl").is_file() and len(_metrics(run)) >= 2, launcher)
    workers = psutil.Process(launcher.pid).children(recursive=True)
    next(w for w in workers if w.environ().get("RANK") == "1").terminate()
    try:
        _, stderr = launcher.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        _kill_launch(launcher)
        pytest.fail("the processes did not stop together (one waits on the other)")

    saved = list((run / "checkpoints").iterdir())
    assert len(saved) == 1, saved
    stopped_at = json.loads((saved[0] / "train_state.json").read_text())["step"]
    assert stopped_at == max(r["step"] for r in _metrics(run))  # the step under way, finished by both
    assert {"rng_0.safetensors", "rng_1.safetensors"} <= set(json.loads((saved[0] / "manifest.json").read_text())["files"])
    assert stderr.count(f"stopped: stopped by SIGTERM after step {stopped_at}") == 2, stderr[-3000:]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resuming_on_another_number_of_processes_is_refused(tmp_path, tiny_bert, sentiment_files):
    """Saved on 2 processes (global batch 16, each process reading every other batch), resumed on
    1: it would go on at the wrong place in the data with half the batch. One line instead,
    naming both counts; the run is left as it was. The count is in train_state.json."""
    run = tmp_path / "run"
    cfg = _resumable_config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, max_steps=2,
                            save_every=1, eval_each_epoch="false")
    two = _torchrun(2, "train", "--config", str(cfg))
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads((run / "checkpoints" / "step-000002" / "train_state.json").read_text())["processes"] == 2
    before = _tree(run)
    one = run_cli("train", "--config", str(cfg), "--resume", "training.max_steps=4",
                  env={"OMP_NUM_THREADS": "1"})
    assert one.returncode == 2, one.stderr
    lines = one.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in one.stderr, one.stderr
    assert "saved by a run on 2 process(es) and this one has 1" in lines[0]
    assert "resume with 2 process(es)" in lines[0]
    assert _tree(run) == before
