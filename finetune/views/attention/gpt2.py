"""GPT-2: query and key come out of one fused `c_attn` Conv1D (query | key | value along the
last axis); causal; scaled by 1/√d_k, and optionally by 1/(layer+1)."""

from __future__ import annotations

from finetune.views.attention.bert import split_heads


def self_attention_modules(model) -> list:
    return [m for _, m in model.named_modules()
            if type(m).__name__ == "GPT2Attention" and not m.is_cross_attention]


def scores(module, inputs: dict):
    q, k, _ = module.c_attn(inputs["hidden_states"]).split(module.split_size, dim=2)
    q, k = split_heads(q, module.num_heads), split_heads(k, module.num_heads)
    return q @ k.transpose(-1, -2) * module.scaling
