"""Label smoothing: with eps = 0 the recomputed loss is the model's own for every head kind;
with eps > 0 it is the smoothed cross-entropy over the positions that count."""

from __future__ import annotations

import pytest
import torch

from finetune.training.loss import smoothed_loss


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    from tiny_models import build_tiny_generator

    return {f: build_tiny_generator(f, tmp_path_factory.mktemp(f)) for f in ("gpt2", "t5")}


def _batch(vocab, prompt_masked: bool):
    torch.manual_seed(0)
    ids = torch.randint(3, vocab, (2, 7))
    labels = ids.clone()
    if prompt_masked:
        labels[:, :3] = -100  # a decoder-only prompt does not count
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


@pytest.mark.parametrize("family,shift", [("gpt2", True), ("t5", False)])
def test_no_smoothing_is_the_model_own_loss(generators, family, shift):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cls = AutoModelForCausalLM if shift else AutoModelForSeq2SeqLM
    model = cls.from_pretrained(generators[family]).eval()
    batch = _batch(model.config.vocab_size, prompt_masked=shift)
    with torch.no_grad():
        out = model(**batch)
    torch.testing.assert_close(smoothed_loss(out.logits, batch["labels"], 0.0, shift), out.loss)


def test_classification_and_the_smoothed_formula(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).eval()
    batch = {"input_ids": torch.randint(5, 100, (4, 6)), "labels": torch.tensor([0, 2, 1, 2])}
    with torch.no_grad():
        out = model(**batch)
    torch.testing.assert_close(smoothed_loss(out.logits, batch["labels"], 0.0, False), out.loss)
    eps = 0.1
    logp = out.logits.log_softmax(-1)
    target = torch.full_like(logp, eps / 3).scatter(1, batch["labels"][:, None], 1 - eps + eps / 3)
    expected = -(target * logp).sum(-1).mean()
    torch.testing.assert_close(smoothed_loss(out.logits, batch["labels"], eps, False), expected)


def test_a_run_trains_with_label_smoothing(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    import json

    from conftest import main_in_process, sentiment_yaml, write_config

    run = tmp_path / "run"
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
training: {{output_dir: {run}, max_steps: 4, batch_size: 16, log_every: 2, label_smoothing: 0.2,
           eval_each_epoch: false}}
""")
    code, _, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 0, err
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
              if '"train"' in line]
    assert len(losses) == 2 and all(0 < x < 10 for x in losses)
    assert "label_smoothing: 0.2" in (run / "config.yaml").read_text()
