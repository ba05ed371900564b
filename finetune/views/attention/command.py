"""`finetune attention RUN TEXT`: heatmaps in RUN/attention. Without --head: a grid of every
head of the layer, and each head on its own; with --head: that head. T5 runs get the three
kinds (encoder, decoder, cross). Layers and heads are numbered from 0."""

from __future__ import annotations

from pathlib import Path

from finetune.errors import ConfigError
from finetune.storage import run_dir as rd
from finetune.views.attention.heatmaps import head_grid, single_head


def attention_run(run: Path, cfg, text: str, layer: int | None, head: int | None,
                  target: str | None = None) -> list[Path]:
    from finetune.saved.saved_model import load_run_model, saved_config, verified_model_dir
    from finetune.views.attention.one_text import text_attention

    # Check the options against the saved config before the (slow) model load.
    saved = saved_config(verified_model_dir(run))
    _pick(layer, saved.num_hidden_layers, "--layer", default=0)
    _pick(head, saved.num_attention_heads, "--head", default=0)
    task, tokenizer, model = load_run_model(run, cfg)
    maps, tokens = text_attention(task, tokenizer, model, text, target)
    out = rd.own_dir(run / rd.ATTENTION_DIR)
    written = []
    for kind, probs in maps.items():
        n_layers, n_heads = probs.shape[:2]
        at = _pick(layer, n_layers, "--layer", default=n_layers - 1)
        queries, keys = tokens[kind]
        name = "" if kind == "self" else f"{kind} "
        if head is None:
            written.append(head_grid(probs[at], queries, keys,
                                     f"{name}attention, layer {at} of 0..{n_layers - 1}, every head",
                                     out / rd.attention_grid_file(at, kind)))
        for h in [_pick(head, n_heads, "--head", default=0)] if head is not None else range(n_heads):
            written.append(single_head(probs[at, h], queries, keys, f"{name}layer {at}, head {h} (from 0)",
                                       out / rd.attention_file(at, h, kind)))
    return written


def _pick(value: int | None, count: int, option: str, default: int) -> int:
    if value is None:
        return default
    if not -count <= value < count:
        raise ConfigError(f"{option} {value}: the model has {count} (0..{count - 1}, or negative from the end)")
    return value % count
