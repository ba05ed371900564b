"""What one micro-batch keeps for backward, from the model's config: per layer and token, the
tensors autograd saves in a transformer block (Llama-style count: the two norms' inputs in
fp32 and outputs, q/k/v after rotation, the attention output and the output projection's input,
and 4 x intermediate for a gated MLP, 2 x for a plain one), plus the T x T attention weights
where the kernel is eager. With activation checkpointing only each layer's input is kept, and
one layer at a time is recomputed in backward. The logits of a language-model head are counted
apart: their fp32 copy, log-softmax and gradient dominate at large vocabularies."""

from __future__ import annotations

from dataclasses import dataclass

GATED_MLP_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo", "olmo2", "granite"}


@dataclass
class Shape:
    """The sizes that set activation memory, read from a transformers config."""

    hidden: int
    layers: int  # decoder layers (all layers of an encoder-only or decoder-only model)
    encoder_layers: int  # of an encoder-decoder; 0 otherwise
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    gated: bool
    dropout: bool
    vocab: int

    @classmethod
    def of(cls, config) -> "Shape":
        hidden = config.hidden_size
        heads = config.num_attention_heads
        encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        layers = getattr(config, "num_decoder_layers", None) or config.num_hidden_layers
        intermediate = (getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
                        or getattr(config, "d_ff", None) or 4 * hidden)
        gated = (config.model_type in GATED_MLP_TYPES or "gated" in str(getattr(config, "feed_forward_proj", ""))
                 or getattr(config, "hidden_act", "") == "silu")
        dropout = any((getattr(config, name, 0) or 0) > 0 for name in (
            "dropout_rate", "resid_pdrop", "hidden_dropout_prob", "attention_dropout", "dropout"))
        return cls(
            hidden=hidden, layers=layers, encoder_layers=config.num_hidden_layers if encoder_decoder else 0,
            heads=heads, kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or getattr(config, "d_kv", None) or hidden // heads,
            intermediate=intermediate, gated=gated, dropout=dropout, vocab=getattr(config, "vocab_size", 0),
        )


def per_token_layer(shape: Shape, width: int, tokens_per_row: int, eager: bool, cross: bool = False) -> int:
    """Bytes one token keeps in one layer without checkpointing."""
    h, s = shape.hidden, width
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    attention = 3 * q + 2 * kv  # q, k, v as the kernel reads them; its output; o_proj's input
    if cross:  # a decoder layer's cross-attention: q and its output here, k/v over the encoder's tokens
        attention += 3 * q
    mlp = (4 if shape.gated else 2) * shape.intermediate
    values = s * (2 * h + attention + mlp) + 8 * h  # + both norms' inputs, in fp32
    if eager:  # softmax in fp32 and its cast: heads x T x T per row, i.e. heads x T per token
        values += shape.heads * tokens_per_row * (4 + s)
    if shape.dropout:  # masks (1 byte) and dropped outputs on attention and MLP outputs
        values += 2 * h * (1 + s)
    return values


def activation_bytes(shape: Shape, *, batch: int, tokens: int, encoder_tokens: int, width: int,
                     residual_width: int, checkpointing: bool, eager: bool) -> int:
    """Peak activation bytes of one micro-batch: what is kept for backward plus the one layer
    that backward works on. `tokens`, `encoder_tokens`: per row (the longest the data holds)."""
    def stack(layers: int, per_row: int, cross: bool) -> tuple[int, int]:
        if not layers:
            return 0, 0
        one = batch * per_row * per_token_layer(shape, width, per_row, eager, cross)
        if checkpointing:  # each layer's input kept; one layer recomputed, with its gradients
            return layers * batch * per_row * shape.hidden * residual_width, 2 * one
        return layers * one, one

    kept_dec, work_dec = stack(shape.layers, tokens, cross=bool(shape.encoder_layers))
    kept_enc, work_enc = stack(shape.encoder_layers, encoder_tokens, cross=False)
    embeddings = 2 * batch * (tokens + encoder_tokens) * shape.hidden * residual_width
    return kept_dec + kept_enc + max(work_dec, work_enc) + embeddings


def logits_bytes(positions: int, vocab: int, width: int) -> int:
    """A language-model head over `positions`, at the loss's backward, where most is alive at
    once: the head's output (kept by the model's output), the saved fp32 log-softmax, the
    gradient reaching it and the gradient it passes on (both fp32)."""
    return positions * vocab * (width + 12)


def evaluation_bytes(shape: Shape, *, batch: int, tokens: int, encoder_tokens: int, width: int,
                     lm_head: bool) -> int:
    """An evaluation batch without gradients: one layer's tensors at a time, and a language
    model's full logits with the fp32 copy and log-softmax the per-token loss takes (the
    evaluation keeps the plain path: its logits are read whole)."""
    widest = max(tokens, encoder_tokens)
    layer = batch * widest * per_token_layer(shape, width, widest, eager=False)
    logits = batch * tokens * shape.vocab * (width + 8) if lm_head else 0
    return layer + logits
