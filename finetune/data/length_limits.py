"""Token lengths the model can take. A length beyond its position embeddings fails deep in the
forward pass (an index error on the CPU, a device-side assert on a GPU) after the model has
loaded and the data is tokenized; checked here from the config alone, before either."""

from __future__ import annotations

from finetune.configuration.config import RunConfig
from finetune.errors import ConfigError

# RoBERTa-style embeddings number positions from padding_idx + 1: 514 positions hold 512 tokens.
PADDING_OFFSET_MODELS = {"roberta", "xlm-roberta", "camembert", "data2vec-text", "longformer"}


def position_limit(model_config) -> tuple[int, str] | None:
    """(most tokens per sequence, the config field it comes from), or None for relative
    positions (T5's buckets: no fixed limit; t5-small's `n_positions` is a leftover)."""
    if getattr(model_config, "relative_attention_num_buckets", None) is not None:
        return None
    for field in ("n_positions", "max_position_embeddings"):  # GPT-2 aliases the second to the first
        limit = getattr(model_config, field, None)
        if isinstance(limit, int) and limit > 0:
            if model_config.model_type in PADDING_OFFSET_MODELS:
                limit -= (getattr(model_config, "pad_token_id", None) or 0) + 1
            return limit, field
    return None


def check_lengths(cfg: RunConfig, task_kind: str, model_config) -> None:
    found = position_limit(model_config)
    if found is None:
        return
    limit, field = found
    d, new_tokens = cfg.data, cfg.eval.generation.max_new_tokens
    if task_kind == "classification":
        lengths = {"data.max_length": d.max_length}
    elif task_kind == "causal":  # prompt and target share one sequence
        lengths = {
            "data.max_source_length + data.max_target_length": d.max_source_length + d.max_target_length,
            "data.max_source_length + eval.generation.max_new_tokens": d.max_source_length + new_tokens,
        }
    else:
        lengths = {
            "data.max_source_length": d.max_source_length,
            "data.max_target_length": d.max_target_length,
            "eval.generation.max_new_tokens": new_tokens,
        }
    for key, value in lengths.items():
        if value > limit:
            raise ConfigError(
                f"{key} = {value}: model '{cfg.model.name_or_path}' takes at most {limit} tokens "
                f"({field} in its config); lower {key} to {limit} or less"
            )
