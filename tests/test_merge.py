"""`finetune merge`: the merged model loads without peft and computes what the adapter did."""

from __future__ import annotations

import ast
import json

import pytest

from conftest import run_cli

TEXTS = ["Great value, would buy again.", "The lid cracked on the first day.", "ok"]


def test_merged_model_matches_adapter_and_loads_in_a_pipeline(lora_run, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from finetune.configuration.loading import load_config
    from finetune.saved.saved_model import load_run_model

    out = tmp_path / "merged"
    result = run_cli("merge", str(lora_run), str(out))
    assert result.returncode == 0, result.stderr
    assert not (out / "adapter_config.json").exists()
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}

    _, tokenizer, adapter_model = load_run_model(lora_run, load_config(lora_run / "config.yaml"))
    merged = AutoModelForSequenceClassification.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = adapter_model(**batch).logits
        got = merged.eval()(**batch).logits
    assert not torch.allclose(expected, torch.zeros_like(expected))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)

    classify = pipeline("text-classification", model=str(out), tokenizer=AutoTokenizer.from_pretrained(out))
    labels = [r["label"] for r in classify(TEXTS)]
    assert labels == [merged.config.id2label[i] for i in expected.argmax(-1).tolist()]

    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")  # the merged model's own card, as a plain transformers model
    assert card.data.library_name == "transformers" and "peft" not in card.data.tags
    assert f"from the LoRA adapter in `{lora_run.name}/model/`" in card.text
    # Its code, run as written from the run directory in a fresh process, answers as the adapter does.
    from test_hub_loading import card_code, run_python

    from finetune.saved.card_usage import EXAMPLE_TEXT

    [answer] = ast.literal_eval(run_python(card_code(card.text), lora_run)[-1])
    with torch.no_grad():
        probs = adapter_model(**tokenizer([EXAMPLE_TEXT], return_tensors="pt")).logits.softmax(-1)[0]
    assert answer["label"] == merged.config.id2label[int(probs.argmax())]
    assert answer["score"] == pytest.approx(float(probs.max()), abs=1e-4)


def test_merge_refuses_a_non_empty_output(lora_run, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x").write_text("keep")
    result = run_cli("merge", str(lora_run), str(out))
    assert result.returncode == 2 and "not empty" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (out / "x").read_text() == "keep"


def test_merge_refuses_a_full_finetune_run(lora_run, tmp_path):
    # A run directory whose model is a full model (config.json, no adapter): refused before loading.
    run = tmp_path / "full"
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text((lora_run / "config.yaml").read_text())
    (run / "model" / "config.json").write_text((lora_run / "model" / "base_model_config.json").read_text())
    result = run_cli("merge", str(run), str(tmp_path / "out"))
    assert result.returncode == 2 and "is not a LoRA run" in result.stderr
    assert not (tmp_path / "out").exists()
