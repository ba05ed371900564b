"""LoRA target resolution for each supported architecture, on tiny random models."""

from __future__ import annotations

import pytest
from tiny_models import tiny_model

from finetune.configuration.config import LoraSection
from finetune.errors import ModelError
from finetune.model.lora import resolve_targets, wrap_with_lora

EXPECTED = {
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin"],
    "gpt2": ["c_attn", "attn.c_proj"],
    "t5": ["q", "k", "v", "o"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
KINDS = {"bert": "classification", "roberta": "classification", "distilbert": "classification",
         "gpt2": "causal", "t5": "seq2seq", "llama": "causal"}


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_auto_targets_are_the_attention_projections(model_type):
    model = tiny_model(model_type)
    assert resolve_targets(model, LoraSection(enabled=True)) == EXPECTED[model_type]
    wrapped = wrap_with_lora(model, LoraSection(enabled=True), KINDS[model_type])
    lora_layers = {n.rsplit(".lora_A", 1)[0] for n, _ in wrapped.named_parameters() if ".lora_A." in n}
    # Every attention projection of every layer is wrapped, and nothing else.
    assert lora_layers and all(any(n.endswith(t) for t in EXPECTED[model_type]) for n in lora_layers)
    per_layer = len(lora_layers) / 2  # two layers in each tiny model (T5: encoder+decoder blocks)
    assert per_layer >= len(EXPECTED[model_type])
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in trainable)


def test_gpt2_conv1d_uses_fan_in_fan_out():
    wrapped = wrap_with_lora(tiny_model("gpt2"), LoraSection(enabled=True), "causal")
    assert wrapped.peft_config["default"].fan_in_fan_out is True


def test_wrapping_twice_is_a_no_op():
    once = wrap_with_lora(tiny_model("bert"), LoraSection(enabled=True), "classification")
    assert wrap_with_lora(once, LoraSection(enabled=True), "classification") is once


def test_unknown_target_lists_the_linear_layers():
    with pytest.raises(ModelError) as err:
        resolve_targets(tiny_model("bert"), LoraSection(target_modules=["q_proj"]))
    message = str(err.value)
    assert "'q_proj' matches no layer of this bert" in message
    assert "query" in message and "dense" in message


def test_explicit_targets_are_kept():
    assert resolve_targets(tiny_model("llama"), LoraSection(target_modules=["q_proj", "v_proj"])) == ["q_proj", "v_proj"]


def test_classifier_head_is_trained_and_saved(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from tiny_models import TINY

    model = BertForSequenceClassification(BertConfig(vocab_size=100, num_labels=3, **TINY))
    wrapped = wrap_with_lora(model, LoraSection(enabled=True), "classification")
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable)
    wrapped.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert any("classifier" in k for k in saved)
