"""Attention weights [layer, batch, head, query, key] of any supported family, by kind:
"self" for one-stack models (BERT family, GPT-2, Llama-style, and the sparse families),
"encoder", "decoder" and "cross" for T5."""

from __future__ import annotations

from finetune.errors import ModelError
from finetune.views.attention import bert, gpt2, llama, t5
from finetune.views.attention.capture import call_inputs

# One-stack families: (their self-attention modules, the Q/K recipe, causal?). Tried in order;
# the BERT test is duck-typed, so it comes last.
ONE_STACK = ((gpt2.self_attention_modules, gpt2.scores, True),
             (llama.self_attention_modules, llama.scores, True),
             (bert.self_attention_modules, bert.scores, False))
T5_TYPES = ("t5", "mt5")


def attention_maps(model, batch: dict) -> dict:
    """`batch`: input_ids and attention_mask, plus decoder_input_ids for T5. A LoRA model is
    looked at through its peft wrapper's base model, adapter layers in place."""
    import torch

    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    model.eval()
    with torch.no_grad():  # the recipes call the projections again, outside the forward pass
        return _maps(model, batch)


def _maps(model, batch: dict) -> dict:
    import torch

    keys_kept = batch["attention_mask"].bool()
    if model.config.model_type in T5_TYPES:
        return _t5_maps(model, batch, keys_kept)
    for find, recipe, causal in ONE_STACK:
        modules = find(model)
        if modules:
            inputs = call_inputs(modules, lambda: model(**batch))
            return {"self": torch.stack([_softmax(recipe(m, i), keys_kept, causal)
                                         for m, i in zip(modules, inputs)])}
    raise ModelError(
        f"attention maps: model type '{model.config.model_type}' is not supported; they are computed for "
        "the BERT family (absolute positions), GPT-2, Llama-style decoders, T5, Longformer, LED and BigBird"
    )


def model_attention(model, tokenizer, batch: dict) -> dict:
    """attention_maps, or for Longformer, LED and BigBird the weights they return themselves,
    over the batch's own tokens."""
    from finetune.data.long_inputs import pad_to_model
    from finetune.views.sparse_attention_maps import SPARSE_FAMILIES, sparse_attention_probs

    if getattr(model.config, "model_type", "") not in SPARSE_FAMILIES:
        return attention_maps(model, batch)
    length = batch["input_ids"].shape[1]
    # Padded as in training, so BigBird attends block-sparse here too.
    padded = pad_to_model(dict(batch), model.config, tokenizer)
    return {"self": sparse_attention_probs(model, padded)[..., :length, :length]}


def _t5_maps(model, batch: dict, source_kept) -> dict:
    import torch

    modules = t5.attention_modules(model)
    every = [m for kind in ("encoder", "decoder", "cross") for m in modules[kind]]
    inputs = dict(zip(map(id, every), call_inputs(every, lambda: model(**batch))))
    target_kept = batch.get("decoder_attention_mask", torch.ones_like(batch["decoder_input_ids"])).bool()
    rules = {"encoder": (modules["encoder"][0], source_kept, False),
             "decoder": (modules["decoder"][0], target_kept, True),
             "cross": (None, source_kept, False)}
    return {kind: torch.stack([_softmax(t5.scores(m, inputs[id(m)], first), kept, causal)
                               for m in modules[kind]])
            for kind, (first, kept, causal) in rules.items()}


def _softmax(scores, keys_kept, causal: bool):
    """Padded keys, and for a causal model later positions, get no attention."""
    import torch

    allowed = keys_kept[:, None, None, :]
    if causal:
        queries, keys = scores.shape[-2:]
        allowed = allowed & torch.ones(queries, keys, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, torch.finfo(scores.dtype).min), dim=-1)
