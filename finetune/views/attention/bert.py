"""BERT family (BERT, RoBERTa, ELECTRA...): `query` / `key` Linear layers, absolute positions,
scores scaled by 1/√d_k."""

from __future__ import annotations


def self_attention_modules(model) -> list:
    """The BERT-style self-attention modules, in layer order; [] for any other family."""
    import torch

    config = getattr(model, "config", None)
    if (getattr(config, "position_embedding_type", "absolute") or "absolute") != "absolute":
        return []  # relative-key positions add a term we do not compute
    return [m for _, m in model.named_modules()
            if isinstance(getattr(m, "query", None), torch.nn.Module)
            and isinstance(getattr(m, "key", None), torch.nn.Module)
            and hasattr(m, "num_attention_heads")]


def scores(module, inputs: dict):
    """[batch, head, query, key] before the mask."""
    hidden = inputs["hidden_states"]
    q = split_heads(module.query(hidden), module.num_attention_heads)
    k = split_heads(module.key(hidden), module.num_attention_heads)
    return q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5


def split_heads(x, heads: int):
    """[batch, length, heads·d] → [batch, heads, length, d]."""
    batch, length, width = x.shape
    return x.float().view(batch, length, heads, width // heads).transpose(1, 2)
