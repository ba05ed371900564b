"""Every run directory gets a Hugging Face model card (README.md with YAML front matter)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import FAKE_TOKEN


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_model_card_front_matter_and_body(lora_run, tiny_bert):
    text = (lora_run / "README.md").read_text()
    meta = _front_matter(text)
    # A local base model is named relative to the run directory, not by this machine's path.
    assert not meta["base_model"].startswith("/")
    assert (lora_run / meta["base_model"]).resolve() == tiny_bert.resolve()
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-classification"
    assert {"lora", "sentiment"} <= set(meta["tags"])
    result = meta["model-index"][0]["results"][0]
    reported = {m["type"]: m["value"] for m in result["metrics"]}
    final = json.loads((lora_run / "eval_validation.json").read_text())
    assert reported["accuracy"] == round(final["accuracy"], 4)
    assert result["dataset"]["split"] == "validation"
    for needle in ("PeftModel.from_pretrained", "pipeline(", "| learning rate | 0.005 |",
                   "| optimizer steps | 12 |", "Training took"):
        assert needle in text, needle
    # The card also sits in the model directory one would upload, replacing peft's template.
    assert (lora_run / "model" / "README.md").read_text() == text


def test_no_secret_reaches_the_run_directory(lora_run):
    for path in lora_run.rglob("*"):
        if path.is_file() and path.suffix in {".md", ".yaml", ".json", ".jsonl", ".txt"}:
            assert FAKE_TOKEN not in path.read_text(errors="ignore"), path


def test_credentials_in_names_are_masked():
    from finetune.configuration.loading import validate
    from finetune.views.model_card import render

    cfg = validate({"task": "sentiment", "model": {"name_or_path": "https://user:pw@example.com/m"},
                    "data": {"dataset": "org/data"}}, source="test")
    card = render(cfg, "AutoModelForSequenceClassification", {"accuracy": 0.5}, 60.0, 10, Path("r"))
    assert "user:pw" not in card and _front_matter(card)["datasets"] == ["org/data"]


def test_the_card_and_config_record_the_global_batch(lora_run):
    card = (lora_run / "README.md").read_text()
    assert "| processes | 1 |" in card and "| global batch size | 16 |" in card
    head = (lora_run / "config.yaml").read_text().splitlines()[0]
    assert head == "# 1 process(es) x batch_size 16 x gradient_accumulation_steps 1 = global batch 16"
