"""The NaN guard: `stop` names the first bad step; `skip` drops bad micro-batches, within bounds;
no save ever writes non-finite weights, so the checkpoint a stop names is a good one."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from conftest import run_cli
from test_bad_inputs import base_config, run_main

from finetune.training.divergence import SKIP_FLOOR, DivergenceGuard, require_finite_weights
from finetune.errors import TrainingStopped
from finetune.training.loop import NAN_TEST_ENV


def test_stop_names_the_first_bad_step():
    guard = DivergenceGuard(torch.device("cpu"), "stop", lambda: "Last checkpoint: x.")
    guard.observe(torch.tensor(0.5), step=1)
    with pytest.raises(TrainingStopped, match="at step 2;.*Last checkpoint: x"):
        guard.observe(torch.tensor(float("nan")), step=2)


def test_skip_counts_and_never_stops():
    guard = DivergenceGuard(torch.device("cpu"), "skip", lambda: "")
    verdicts = [guard.finite(torch.tensor(v)) for v in (1.0, float("inf"), float("nan"), 2.0)]
    guard.observe(torch.tensor(float("nan")), step=3)
    guard.check()
    assert verdicts == [True, False, False, True] and guard.skipped == 2


def test_skip_stops_once_a_bounded_run_of_batches_was_all_bad():
    guard = DivergenceGuard(torch.device("cpu"), "skip", lambda: "Last checkpoint: x.", skip_limit=3)
    assert guard.skip_limit == SKIP_FLOOR  # one bad batch per short log window must not stop a run
    assert guard.finite(torch.tensor(1.0))
    for _ in range(SKIP_FLOOR - 1):
        assert not guard.finite(torch.tensor(float("nan")))
    with pytest.raises(TrainingStopped, match=f"last {SKIP_FLOOR} batches in a row.*Last checkpoint: x"):
        guard.finite(torch.tensor(float("inf")))


def test_skip_refuses_to_finish_a_run_that_trained_on_nothing():
    guard = DivergenceGuard(torch.device("cpu"), "skip", lambda: "")
    guard.finite(torch.tensor(float("nan")))
    with pytest.raises(TrainingStopped, match="nothing was trained"):
        guard.check_before_save()
    guard.finite(torch.tensor(0.5))
    guard.check_before_save()  # one usable batch: a real (if short) run


def test_non_finite_weights_are_never_saved():
    layer = torch.nn.Linear(2, 2)
    require_finite_weights(layer, "step-000001", "")
    with torch.no_grad():
        layer.bias[1] = float("inf")
    with pytest.raises(TrainingStopped, match="first: bias.*'step-000002'"):
        require_finite_weights(layer, "step-000002", "")
    layer.bias.requires_grad_(False)  # frozen weights are not ours to judge
    require_finite_weights(layer, "step-000002", "")


def _train(tmp_path, model, files, capsys, monkeypatch, **training) -> tuple[int, str]:
    cfg = base_config(tmp_path, model, files)
    cfg["training"].update(training)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return run_main(["train", "--config", str(tmp_path / "run.yaml")], capsys, monkeypatch)


def test_overflowing_weights_stop_before_the_save_and_the_named_checkpoint_is_finite(
    tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch
):
    # Warmup makes step 1's lr 0 (a finite step-1 checkpoint); step 2's lr overflows float32, so
    # its weights turn inf/NaN while step 2's loss, computed before the update, is still finite.
    code, stderr = _train(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, lr=1e39,
                          warmup_ratio=0.5, max_steps=4, save_every=1, max_grad_norm=None)
    line = stderr.strip().splitlines()[-1]
    assert code == 2 and line.startswith("stopped: the weights became NaN or infinite"), stderr
    assert "step-000002" in line and "Last good checkpoint: " in line
    named = Path(line.split("Last good checkpoint: ")[1].split(";")[0])
    assert named.name == "step-000001"
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert saved == ["step-000001"] and not (tmp_path / "run" / "model").exists()
    weights = [t for f in named.glob("*.safetensors") for t in load_file(f).values()]
    assert weights and all(torch.isfinite(t).all() for t in weights if t.is_floating_point())


def test_skip_with_every_batch_bad_stops_instead_of_saving_an_untrained_model(
    tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch
):
    broken = tmp_path / "nan-model"
    shutil.copytree(tiny_bert, broken)
    weights = load_file(broken / "model.safetensors")
    name = next(k for k in weights if "word_embeddings" in k)
    weights[name] = torch.full_like(weights[name], float("nan"))  # every forward pass is NaN
    save_file(weights, broken / "model.safetensors")
    code, stderr = _train(tmp_path, broken, sentiment_files, capsys, monkeypatch, on_nan="skip",
                          max_steps=2, log_every=1)
    line = stderr.strip().splitlines()[-1]
    assert code == 2 and line.startswith("stopped: training.on_nan=skip: all 2 batches"), stderr
    assert "nothing was trained" in line and "Traceback" not in stderr
    assert not (tmp_path / "run" / "model").exists()


def test_the_divergence_advice_works_as_printed(tmp_path, tiny_bert, sentiment_files):
    cfg = base_config(tmp_path, tiny_bert, sentiment_files)
    cfg["training"].update(max_steps=6, save_every=1, lr=1e-3, log_every=1)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    stopped = run_cli("train", "--config", str(tmp_path / "run.yaml"), env={NAN_TEST_ENV: "4"})
    line = stopped.stderr.strip().splitlines()[-1]
    assert stopped.returncode == 2 and "NaN or infinite at step 4" in line, stopped.stderr
    assert "Last good checkpoint: " in line and line.split("Last good checkpoint: ")[1].startswith(
        str(tmp_path / "run" / "checkpoints" / "step-000003"))
    advised = re.search(r"continue with a lower learning rate: (finetune .*?); or ", line)
    assert advised, line
    resumed = run_cli(*shlex.split(advised.group(1))[1:])  # exactly as printed (`finetune` = python -m finetune)
    assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, 7))
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["training"]["lr"] == pytest.approx(1e-4)
