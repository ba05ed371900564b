"""Every run directory gets a Hugging Face model card (README.md with YAML front matter)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from conftest import FAKE_TOKEN


def test_model_card_is_a_hub_card_that_round_trips(lora_run, tiny_bert):
    from huggingface_hub import ModelCard, ModelCardData

    text = (lora_run / "README.md").read_text()
    card = ModelCard.load(lora_run / "README.md")  # strict: a bad model-index raises
    data = card.data.to_dict()
    assert ModelCardData(**data).to_dict() == data
    # A local base model stays out of the front matter; the text names it relative to the run.
    assert "base_model" not in data and "license" not in data
    relative = text.split("`", 2)[1]
    assert not relative.startswith("/") and (lora_run / relative).resolve() == tiny_bert.resolve()
    assert "not on the Hub" in text and "License: not stated" in text
    assert data["library_name"] == "peft" and data["pipeline_tag"] == "text-classification"
    assert {"lora", "sentiment"} <= set(data["tags"]) and "accuracy" in data["metrics"]
    final = json.loads((lora_run / "eval_validation.json").read_text())
    accuracy = next(r for r in card.data.eval_results if r.metric_type == "accuracy")
    assert accuracy.metric_value == round(final["accuracy"], 4) and accuracy.dataset_split == "validation"
    for needle in ('model_id = "model"', "id2label = {0: 'negative', 1: 'positive'}", "| learning rate | 0.005 |",
                   "| optimizer steps | 12 |", "Training took"):
        assert needle in text, needle
    # The card also sits in the model directory one would upload, replacing peft's template.
    assert (lora_run / "model" / "README.md").read_text() == text


def test_no_secret_reaches_the_run_directory(lora_run):
    for path in lora_run.rglob("*"):
        if path.is_file() and path.suffix in {".md", ".yaml", ".json", ".jsonl", ".txt"}:
            assert FAKE_TOKEN not in path.read_text(errors="ignore"), path


CLASSIFIER = SimpleNamespace(kind="classification")


def test_credentials_in_names_are_masked():
    from huggingface_hub import ModelCard

    from finetune.configuration.loading import validate
    from finetune.saved.model_card import render

    cfg = validate({"task": "sentiment", "model": {"name_or_path": "https://user:pw@example.com/m"},
                    "data": {"dataset": "org/data"}}, source="test")
    card = render(cfg, CLASSIFIER, {"accuracy": 0.5}, 60.0, 10, Path("r"), labels=["a", "b"])
    assert "user:pw" not in card and ModelCard(card).data.datasets == ["org/data"]


def test_license_comes_from_the_config_else_from_the_base_models_card(tmp_path, tiny_bert):
    from huggingface_hub import ModelCard

    from finetune.configuration.loading import validate
    from finetune.saved.model_card import render

    base = shutil.copytree(tiny_bert, tmp_path / "base")
    (base / "README.md").write_text("---\nlicense: mit\n---\n# a base model\n")

    def license_of(**model):
        cfg = validate({"task": "sentiment", "model": {"name_or_path": str(base), **model},
                        "data": {"files": {"train": "t.jsonl"}}}, source="test")
        return ModelCard(render(cfg, CLASSIFIER, {}, 1.0, 1, tmp_path / "run", labels=["a", "b"])).data.license

    assert license_of() == "mit"
    assert license_of(license="apache-2.0") == "apache-2.0"


def test_the_card_and_config_record_the_global_batch(lora_run):
    card = (lora_run / "README.md").read_text()
    assert "| processes | 1 |" in card and "| global batch size | 16 |" in card
    head = (lora_run / "config.yaml").read_text().splitlines()[0]
    assert head == "# 1 process(es) x batch_size 16 x gradient_accumulation_steps 1 = global batch 16"
