"""T5: `q` / `k` Linear layers, no 1/√d_k scaling (folded into the initialisation), and a
learned relative position bias that the first layer of each stack computes and every layer
adds (cross-attention has none). Three kinds of map: encoder self-attention, decoder
self-attention (causal) and cross-attention (decoder queries, encoder keys)."""

from __future__ import annotations

from finetune.views.attention.bert import split_heads


def attention_modules(model) -> dict[str, list]:
    """{"encoder", "decoder", "cross"}: the T5Attention modules of each kind, in layer order."""
    encoder = [block.layer[0].SelfAttention for block in model.get_encoder().block]
    decoder_blocks = model.get_decoder().block
    return {"encoder": encoder,
            "decoder": [block.layer[0].SelfAttention for block in decoder_blocks],
            "cross": [block.layer[1].EncDecAttention for block in decoder_blocks]}


def scores(module, inputs: dict, first_of_stack):
    """`first_of_stack`: the stack's layer-0 self-attention, which owns the position bias;
    None for cross-attention."""
    hidden = inputs["hidden_states"]
    keys = inputs.get("key_value_states")
    q = split_heads(module.q(hidden), module.n_heads)
    k = split_heads(module.k(hidden if keys is None else keys), module.n_heads)
    raw = q @ k.transpose(-1, -2)
    if first_of_stack is None:
        return raw
    return raw + first_of_stack.compute_bias(q.shape[-2], k.shape[-2]).float()
