"""Llama-style decoders (Llama, Mistral, Qwen2, SmolLM): `q_proj` / `k_proj`, rotary position
embeddings applied to both after projection, fewer key heads than query heads (each key head
serves `num_key_value_groups` query heads); causal; scaled by 1/√d_k."""

from __future__ import annotations


def self_attention_modules(model) -> list:
    return [m for _, m in model.named_modules()
            if hasattr(m, "q_proj") and hasattr(m, "k_proj") and hasattr(m, "num_key_value_groups")]


def scores(module, inputs: dict):
    import torch
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    hidden = inputs["hidden_states"]
    shape = (*hidden.shape[:-1], -1, module.head_dim)
    q = module.q_proj(hidden).view(shape).transpose(1, 2)
    k = module.k_proj(hidden).view(shape).transpose(1, 2)
    cos, sin = inputs["position_embeddings"]
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    k = torch.repeat_interleave(k, module.num_key_value_groups, dim=1)  # key head i//groups
    return q.float() @ k.float().transpose(-1, -2) * module.scaling
