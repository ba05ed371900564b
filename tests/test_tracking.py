"""Training logs: metrics.jsonl always, TensorBoard events when configured, a clear error for a
configured tracker whose package is missing."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import run_cli, write_config


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
training: {{report_to: [mlflow]}}
""")
    result = run_cli("config", "validate", str(cfg))
    assert result.returncode == 2 and "training.report_to" in result.stderr
