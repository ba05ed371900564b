"""training.activation_checkpointing: the same training for less kept activation memory."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_cli, sentiment_yaml, write_config


def _lora_bert(path, checkpointing: bool):
    from transformers import AutoModelForSequenceClassification

    from finetune.configuration.config import LoraSection
    from finetune.model.lora import wrap_with_lora
    from finetune.model.activation_checkpointing import enable_activation_checkpointing

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    if checkpointing:
        enable_activation_checkpointing(model)
    return wrap_with_lora(model, LoraSection(enabled=True, r=4, alpha=8), "classification").train()


def _step(model) -> tuple[int, dict[str, torch.Tensor]]:
    """Bytes saved for backward by one forward (dropout on), and the adapters' gradients."""
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(1000, 5000, (8, 48), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)  # the same dropout masks in both models
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.ones(8, dtype=torch.long)).loss
    loss.backward()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = sum(n for ptr, n in saved.items() if ptr not in weights)
    return kept, {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def test_checkpointing_keeps_less_and_computes_the_same_gradients(tiny_bert):
    plain_bytes, plain_grads = _step(_lora_bert(tiny_bert, False))
    ckpt_bytes, ckpt_grads = _step(_lora_bert(tiny_bert, True))
    assert ckpt_bytes < 0.5 * plain_bytes, (ckpt_bytes, plain_bytes)
    assert plain_grads.keys() == ckpt_grads.keys() and plain_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_a_model_without_checkpointing_is_a_clear_error():
    from finetune.errors import ModelError
    from finetune.model.activation_checkpointing import enable_activation_checkpointing

    with pytest.raises(ModelError, match="training.activation_checkpointing"):
        enable_activation_checkpointing(torch.nn.Linear(2, 2))


def test_lora_checkpoints_by_default_and_logs_the_same_losses(tmp_path, tiny_bert, sentiment_files):
    losses = {}
    for flag in ("false", "auto"):
        cfg = write_config(tmp_path / f"{flag}.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
lora:
  enabled: true
training:
  output_dir: {tmp_path / flag}
  max_steps: 4
  batch_size: 8
  log_every: 1
  activation_checkpointing: {flag}
""")
        result = run_cli("train", "--config", str(cfg))
        assert result.returncode == 0, result.stderr
        assert ("activation checkpointing on" in result.stdout) == (flag == "auto"), result.stdout
        lines = (tmp_path / flag / "metrics.jsonl").read_text().splitlines()
        losses[flag] = [r["loss"] for r in map(json.loads, lines) if r["type"] == "train"]
    assert len(losses["auto"]) == 4
    assert losses["auto"] == pytest.approx(losses["false"], rel=1e-5)
