"""Training logs: metrics.jsonl always, TensorBoard events and an MLflow run when configured (read
back with each tool's own reader), a clear error for a configured tracker whose package is missing."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import run_cli, sentiment_yaml, write_config


def test_tensorboard_events_hold_the_logged_loss(lora_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = [json.loads(line) for line in (lora_run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in logged if r["type"] == "train"]
    events = EventAccumulator(str(lora_run / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/lr", "eval/accuracy", "eval/loss"} <= set(events.Tags()["scalars"])
    scalars = events.Scalars("train/loss")
    assert [s.step for s in scalars] == [r["step"] for r in train]
    assert [s.value for s in scalars] == pytest.approx([r["loss"] for r in train], abs=1e-5)


def test_mlflow_file_store_in_the_run_holds_the_logged_metrics_and_config(lora_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")

    logged = [json.loads(line) for line in (lora_run / "metrics.jsonl").read_text().splitlines()]
    client = MlflowClient(tracking_uri=(lora_run / "mlruns").as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("finetune").experiment_id])
    assert run.info.run_name == lora_run.name and run.info.status == "FINISHED"
    assert run.data.params["training.max_steps"] == "12"
    for kind, metric in (("train", "loss"), ("eval", "accuracy")):
        records = [r for r in logged if r["type"] == kind]
        history = client.get_metric_history(run.info.run_id, f"{kind}/{metric}")
        assert [m.step for m in history] == [r["step"] for r in records]
        assert [m.value for m in history] == pytest.approx([r[metric] for r in records], abs=1e-5)


def test_a_run_resumed_from_the_command_line_is_one_mlflow_run(tmp_path, tiny_bert, sentiment_files, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
training:
  output_dir: {tmp_path / 'run'}
  max_steps: 4
  batch_size: 8
  log_every: 2
  save_every: 4
  report_to: [mlflow]
""")
    first = run_cli("train", "--config", str(cfg))
    assert first.returncode == 0, first.stderr
    again = run_cli("train", "--config", str(cfg), "--resume", "training.max_steps=8")
    assert again.returncode == 0, again.stderr
    client = MlflowClient(tracking_uri=(tmp_path / "run" / "mlruns").as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("finetune").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4, 6, 8]
    assert run.info.status == "FINISHED"


def test_a_tracker_that_cannot_start_leaves_nothing_that_blocks_the_same_command(tmp_path, tiny_bert, sentiment_files):
    store = {"MLFLOW_TRACKING_URI": (tmp_path / "store").as_uri()}
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
training:
  output_dir: {tmp_path / 'run'}
  max_steps: 2
  batch_size: 8
  report_to: [mlflow]
""")
    refused = run_cli("train", "--config", str(cfg), env={**store, "MLFLOW_ALLOW_FILE_STORE": "false"})
    assert refused.returncode == 2 and "training.report_to 'mlflow' could not start" in refused.stderr
    assert not (tmp_path / "run").exists()  # the directory the failed start made is gone (failed_start.py)
    fixed = run_cli("train", "--config", str(cfg), env={**store, "MLFLOW_ALLOW_FILE_STORE": "true"})
    assert fixed.returncode == 0, fixed.stderr
    assert (tmp_path / "run" / "model").is_dir()


def test_report_to_accepts_exactly_the_trackers_accelerate_has():
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    from finetune.configuration.config import TrainingSection
    from finetune.training.trackers import PIP_NAMES

    accepted = set(TrainingSection.model_fields["report_to"].annotation.__args__[0].__args__)
    assert accepted == set(LOGGER_TYPE_TO_CLASS) == set(PIP_NAMES)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_configured_but_missing_is_a_clear_error(tmp_path, tiny_bert, sentiment_files):
    cfg = write_config(tmp_path / "w.yaml", f"""
task: sentiment
model: {{name_or_path: {tiny_bert}}}
data: {{files: {{train: {sentiment_files['train']}, validation: {sentiment_files['validation']}}}}}
training: {{output_dir: {tmp_path / 'run'}, report_to: [wandb]}}
""")
    result = run_cli("train", "--config", str(cfg))
    assert result.returncode == 2
    assert "'wandb' package is not installed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before any work


def test_unknown_tracker_is_rejected_by_the_schema(tmp_path, tiny_bert, sentiment_files):
    cfg = write_config(tmp_path / "m.yaml", f"""
task: sentiment
model: {{name_or_path: {tiny_bert}}}
data: {{files: {{train: {sentiment_files['train']}}}}}
training: {{report_to: [tensorbored]}}
""")
    result = run_cli("config", "validate", str(cfg))
    assert result.returncode == 2 and "training.report_to" in result.stderr
