"""`finetune attention`: self-attention maps of a trained model as heatmaps.

Fast attention kernels (SDPA, flash) never materialise the attention weights, so we compute
them ourselves: forward hooks capture each layer's query and key projections, and we form
softmax(Q Kᵀ / √d_k + mask) per head. This needs the model to use plain dot-product attention
on the projections, as the BERT family does (BERT, RoBERTa, ELECTRA...: `query` / `key` Linear
layers, absolute positions). Other families would need: DistilBERT, its `q_lin` / `k_lin`
names; GPT-2, splitting the fused `c_attn` Conv1D and a causal mask; LLaMA-style models,
rotary embeddings applied to Q and K after projection and grouped key heads; T5, no 1/√d_k
scaling plus the learned relative position bias.

Longformer, LED and BigBird never form a full attention matrix either, but their eager kernels
return what they attended to; finetune.views.sparse_attention_maps lays that out as a map.
"""

from __future__ import annotations

import math
from pathlib import Path

from finetune.errors import ConfigError, ModelError



def self_attention_layers(model) -> list:
    """The BERT-style self-attention modules, in layer order."""
    import torch

    layers = [m for _, m in model.named_modules()
              if isinstance(getattr(m, "query", None), torch.nn.Module)
              and isinstance(getattr(m, "key", None), torch.nn.Module)
              and hasattr(m, "num_attention_heads")]
    config = getattr(model, "config", None)
    kind = getattr(config, "position_embedding_type", "absolute") or "absolute"
    if not layers or kind != "absolute":
        model_type = getattr(config, "model_type", type(model).__name__)
        raise ModelError(
            f"attention maps: model type '{model_type}' is not supported; they are computed for "
            "BERT-family models (query/key projections, absolute positions) and for Longformer, "
            "LED and BigBird"
        )
    return layers


def attention_probs(model, batch) -> "torch.Tensor":
    """Attention weights [layer, batch, head, query, key] from the captured projections."""
    import torch

    layers = self_attention_layers(model)
    captured: dict[tuple[int, str], torch.Tensor] = {}
    hooks = []
    for i, layer in enumerate(layers):
        for name in ("query", "key"):
            def keep(_module, _inputs, output, key=(i, name)):
                captured[key] = output.detach()
            hooks.append(getattr(layer, name).register_forward_hook(keep))
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
    mask = batch["attention_mask"][:, None, None, :].bool()  # padded keys get no attention
    maps = []
    for i, layer in enumerate(layers):
        heads = layer.num_attention_heads
        q, k = (_split_heads(captured[(i, n)].float(), heads) for n in ("query", "key"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        maps.append(torch.softmax(scores, dim=-1))
    return torch.stack(maps)


def model_attention(model, tokenizer, batch) -> "torch.Tensor":
    """[layer, batch, head, query, key] over the batch's own tokens, for any supported family."""
    from finetune.data.long_inputs import pad_to_model
    from finetune.views.sparse_attention_maps import SPARSE_FAMILIES, sparse_attention_probs

    if getattr(model.config, "model_type", "") not in SPARSE_FAMILIES:
        return attention_probs(model, batch)
    length = batch["input_ids"].shape[1]
    # Padded as in training, so BigBird attends block-sparse here too.
    padded = pad_to_model(dict(batch), model.config, tokenizer)
    return sparse_attention_probs(model, padded)[..., :length, :length]


def _split_heads(x, heads: int):
    batch, length, width = x.shape
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def attention_run(run: Path, cfg, text: str, layer: int | None, head: int | None) -> list[Path]:
    import json

    from finetune.storage import run_dir as rd
    from finetune.storage.saved_model import load_run_model, saved_config_file

    # Check the options against the saved config before the (slow) model load.
    saved = json.loads(saved_config_file(rd.model_dir(run)).read_text(encoding="utf-8"))
    for value, key, option in ((layer, "num_hidden_layers", "--layer"), (head, "num_attention_heads", "--head")):
        if key in saved:
            _pick(value, saved[key], option, default=0)
    task, tokenizer, model = load_run_model(run, cfg)
    longest = cfg.data.max_source_length if task.kind == "seq2seq" else cfg.data.max_length
    batch = tokenizer([text], truncation=True, max_length=longest, return_tensors="pt")
    probs = model_attention(model, tokenizer, batch)[:, 0]  # [layer, head, query, key]
    n_layers, n_heads = probs.shape[:2]
    layer = _pick(layer, n_layers, "--layer", default=n_layers - 1)
    heads = [_pick(head, n_heads, "--head", default=0)] if head is not None else range(n_heads)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    out = run / rd.ATTENTION_DIR
    out.mkdir(exist_ok=True)
    return [_heatmap(probs[layer, h].numpy(), tokens, f"layer {layer}, head {h}",
                     out / rd.attention_file(layer, h)) for h in heads]


def _pick(value: int | None, count: int, option: str, default: int) -> int:
    if value is None:
        return default
    if not -count <= value < count:
        raise ConfigError(f"{option} {value}: the model has {count} (0..{count - 1}, or negative from the end)")
    return value % count


def _heatmap(weights, tokens: list[str], title: str, target: Path) -> Path:
    from finetune.views.plots import _pyplot

    plt = _pyplot()
    size = max(4.0, 0.35 * len(tokens) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=float(weights.max()))
    ax.set_xticks(range(len(tokens)), tokens, rotation=90)
    ax.set_yticks(range(len(tokens)), tokens)
    ax.set_xlabel("attended to (key)")
    ax.set_ylabel("attending (query)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
