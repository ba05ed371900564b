"""End to end: the real CLI trains and evaluates a classifier, and the files are what a user
needs (resolved config, metrics log, reloadable model, predictions)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, sentiment_yaml, write_config


def _config(tmp_path, model_dir, files, extra="") -> str:
    return sentiment_yaml(model_dir, files) + f"""
training:
  output_dir: {tmp_path / 'run'}
  epochs: 2
  batch_size: 16
  lr: 1.0e-3
  log_every: 5
{extra}
"""


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_train_then_eval_tiny_bert(tmp_path, tiny_bert, sentiment_files, lora):
    cfg = write_config(
        tmp_path / "run.yaml",
        _config(tmp_path, tiny_bert, sentiment_files) + f"lora:\n  enabled: {str(lora).lower()}\n",
    )
    result = run_cli("train", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert "trainable" in result.stdout
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "eval_validation.json", "predictions_validation.jsonl"):
        assert (run / name).is_file(), name
    model_dir = run / "model"
    assert (model_dir / ("adapter_model.safetensors" if lora else "model.safetensors")).is_file()
    assert (run / "best" / "best.json").is_file()

    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if r["type"] == "train"]
    assert train_lines and all(r["samples_per_s"] > 0 and r["tokens_per_s"] > 0 for r in train_lines)
    assert [r["type"] for r in lines].count("eval") == 2  # once per epoch

    saved_labels = json.loads((model_dir / ("base_model_config.json" if lora else "config.json")).read_text())["id2label"]
    assert saved_labels == {"0": "negative", "1": "positive"}

    from_training = json.loads((run / "eval_validation.json").read_text())
    result = run_cli("eval", str(run), "--split", "validation")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "eval_validation.json").read_text())
    assert metrics["samples"] == 120
    assert 0.0 <= metrics["accuracy"] <= 1.0
    preds = [json.loads(line) for line in (run / "predictions_validation.jsonl").read_text().splitlines()]
    assert len(preds) == 120
    assert set(preds[0]) == {"text", "label", "predicted", "probability"}
    accuracy = sum(p["label"] == p["predicted"] for p in preds) / len(preds)
    assert accuracy == pytest.approx(metrics["accuracy"])
    # Re-evaluating the saved model reproduces the score the training run reported.
    assert from_training["accuracy"] == pytest.approx(metrics["accuracy"])
    assert from_training["f1"] == pytest.approx(metrics["f1"])


def test_existing_run_dir_is_not_overwritten(tmp_path, tiny_bert, sentiment_files):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    cfg = write_config(tmp_path / "run.yaml", _config(tmp_path, tiny_bert, sentiment_files))
    result = run_cli("train", "--config", str(cfg))
    assert result.returncode == 2
    # A folder finetune did not make is not a run: the message does not invite --overwrite.
    assert "not created by finetune (it holds keep.txt)" in result.stderr and "--overwrite" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (run / "keep.txt").read_text() == "precious"
