"""Attention maps of the sparse-attention families, from the weights the model itself returns
(`output_attentions=True`, eager kernel), laid out as a dense [query, key] map: zero wherever
the model does not look, so the picture shows its local window and its global tokens.

- Longformer and LED's encoder return, per query, the weights to the global tokens followed by
  the weights to the `attention_window + 1` keys around it; global tokens' own rows come in
  `global_attentions`. We scatter both into the dense map.
- BigBird returns a dense map already (block-sparse: global, sliding and random blocks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: `finetune --help` stays fast
    import torch

SPARSE_FAMILIES = ("longformer", "led", "big_bird")


def sparse_attention_probs(model, batch) -> torch.Tensor:
    """[layer, batch, head, query, key] for a Longformer, LED or BigBird model; the batch must
    already be padded to the model's width rule (finetune.data.long_inputs)."""
    import torch

    config = model.config
    with torch.no_grad():
        if config.is_encoder_decoder:  # LED: the encoder is where the sparse attention is
            out = model.get_encoder()(**batch, output_attentions=True)
        else:
            out = model(**batch, output_attentions=True)
    if config.model_type == "big_bird":
        return torch.stack(out.attentions)
    is_global = batch.get("global_attention_mask")
    if is_global is None:  # Longformer's classifier puts global attention on the first token
        is_global = torch.zeros_like(batch["input_ids"])
        if not config.is_encoder_decoder:
            is_global[:, 0] = 1
    global_rows = getattr(out, "global_attentions", None) or [None] * len(out.attentions)
    return torch.stack([_windowed_to_dense(local, rows, is_global.bool())
                        for local, rows in zip(out.attentions, global_rows)])


def _windowed_to_dense(local, global_rows, is_global):
    """local: [batch, head, seq, x + window + 1]; global_rows: [batch, head, seq, x] (the
    weights of each global token, x of them, to every key) or None when x is 0."""
    import torch

    batch, heads, length, width = local.shape
    dense = local.new_zeros(batch, heads, length, length)
    for b in range(batch):
        globals_ = is_global[b].nonzero().flatten()
        x = len(globals_)
        window = width - x - 1
        if x:
            dense[b][:, :, globals_] = local[b, :, :, :x]  # every query to the global tokens
        for offset in range(window + 1):
            shift = offset - window // 2
            queries = torch.arange(max(0, -shift), min(length, length - shift))
            dense[b][:, queries, queries + shift] += local[b][:, queries, x + offset]
        if x:
            dense[b][:, globals_, :] = global_rows[b].transpose(-1, -2)[:, :x]  # global tokens' rows
    return dense
