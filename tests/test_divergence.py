"""The NaN guard: `stop` names the first bad step; `skip` drops bad micro-batches, within bounds;
no save ever writes non-finite weights, so the checkpoint a stop names is a good one."""

from __future__ import annotations

import json
import math
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
    # step-3's weights gave step 4's NaN loss (as far as the guard can tell): not a good one.
    assert "Last good checkpoint: " in line and line.split("Last good checkpoint: ")[1].startswith(
        str(tmp_path / "run" / "checkpoints" / "step-000002"))
    advised = re.search(r"continue with a lower learning rate: (finetune .*?); or ", line)
    assert advised, line
    resumed = run_cli(*shlex.split(advised.group(1))[1:])  # exactly as printed (`finetune` = python -m finetune)
    assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, 7))
    assert not (tmp_path / "run" / "checkpoints" / "step-000003").exists()  # the discarded future
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["training"]["lr"] == pytest.approx(1e-4)


def _printed_command(stderr: str) -> list[str]:
    """The command the stop's advice prints, split as a shell would (`finetune` = python -m finetune)."""
    line = stderr.strip().splitlines()[-1]
    found = re.search(r"with a lower learning rate: (finetune .*?)(; or |$)", line)
    assert found, line
    return shlex.split(found.group(1))[1:]


def _finite_run(run: Path) -> list[float]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses and all(math.isfinite(x) for x in losses), losses
    return losses


def test_a_real_divergence_names_a_checkpoint_whose_weights_still_train(tmp_path, tiny_bert, sentiment_files):
    # lr 1e6 with warmup: step 1 trains at lr 0, step 2's update makes the weights huge but
    # finite (step 3's loss is still finite), step 3's makes step 4's loss NaN. step-3 is
    # finite yet bad; the advice names step-2 and a learning rate that trains from it.
    cfg = base_config(tmp_path, tiny_bert, sentiment_files)
    cfg["training"].update(max_steps=8, save_every=1, lr=1e6, warmup_ratio=0.5, log_every=1, batch_size=4)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    stopped = run_cli("train", "--config", str(tmp_path / "run.yaml"))
    line = stopped.stderr.strip().splitlines()[-1]
    assert stopped.returncode == 2 and "NaN or infinite at step 4" in line, stopped.stderr
    assert (tmp_path / "run" / "checkpoints" / "step-000003").is_dir()
    assert f"Last good checkpoint: {tmp_path / 'run' / 'checkpoints' / 'step-000002'};" in line
    resumed = run_cli(*_printed_command(stopped.stderr))
    assert resumed.returncode == 0, resumed.stderr
    _finite_run(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "eval_validation.json").read_text())["loss"] < float("inf")


def test_a_divergence_before_any_good_checkpoint_advises_a_new_run_that_trains(tmp_path, tiny_bert, sentiment_files):
    # No warmup: step 1's update breaks the weights, so its checkpoint is no good either.
    cfg = base_config(tmp_path, tiny_bert, sentiment_files)
    cfg["training"].update(max_steps=4, save_every=1, lr=1e6, log_every=1, batch_size=4)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    stopped = run_cli("train", "--config", str(tmp_path / "run.yaml"))
    line = stopped.stderr.strip().splitlines()[-1]
    assert stopped.returncode == 2 and "NaN or infinite at step 2" in line, stopped.stderr
    assert "Last good checkpoint" not in line and "step-000001 holds weights that already diverged" in line
    again = run_cli(*_printed_command(stopped.stderr))
    assert again.returncode == 0, again.stderr
    fresh = next(p for p in tmp_path.iterdir() if p.name.startswith("run-lr"))
    assert len(_finite_run(fresh)) >= 4
    assert (tmp_path / "run" / "checkpoints" / "step-000001").is_dir()  # the stopped run is left as it was


def _training(**changes):
    from finetune.configuration.config import TrainingSection

    return TrainingSection(**changes)


@pytest.mark.parametrize("changes, named, not_named", [
    ({}, ["training.on_nan=skip"], ["fp16", "max_grad_norm", "warmup"]),
    ({"mixed_precision": "fp16"}, ["bf16 instead of fp16"], ["max_grad_norm"]),
    ({"max_grad_norm": None}, ["set training.max_grad_norm"], ["fp16"]),
    ({"on_nan": "skip"}, ["broken rows"], ["on_nan=skip", "fp16"]),
])
def test_the_advice_names_only_settings_the_run_has(tmp_path, changes, named, not_named):
    from finetune.training.divergence import advice

    text = advice(tmp_path / "run", _training(**changes), bad_step=5)
    assert all(x in text for x in named) and not any(x in text for x in not_named), text


def test_the_advised_learning_rate_is_a_tenth_and_never_absurd(tmp_path):
    from finetune.training.divergence import advice

    def advised(t):
        return float(re.search(r"training\.lr=([^;\s]+)", advice(tmp_path, t, 3)).group(1))

    assert advised(_training(lr=5e-4)) == pytest.approx(5e-5)
    assert advised(_training(lr=1e6)) == 1e-3
    assert advised(_training(lr=1.0, optimizer="adafactor")) == 1e-2
