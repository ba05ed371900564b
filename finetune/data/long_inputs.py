"""What sparse-attention encoders need of a batch's width, applied by the collator so the user
never pads by hand.

- Longformer and LED attend in windows: the input must be a multiple of `attention_window`.
  (Their forward pads too, but padding here keeps the batch the model sees the batch we built.)
- BigBird attends in blocks: a multiple of `block_size`. Below (5 + 2·num_random_blocks) blocks
  its block-sparse attention is impossible and the model switches itself to full attention,
  for good, on the first such batch. We decide instead, once: if `max_length` allows inputs
  long enough for block-sparse attention, every batch is padded up to that minimum so the model
  stays sparse the whole run; otherwise it uses full attention from the start, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INPUT_KEYS = {"input_ids": "pad", "attention_mask": 0, "token_type_ids": 0, "global_attention_mask": 0}


@dataclass(frozen=True)
class WidthRule:
    multiple: int | None = None  # pad the width to a multiple of this
    minimum: int | None = None  # and to at least this

    def width(self, longest: int) -> int:
        width = max(longest, self.minimum or 0)
        return math.ceil(width / self.multiple) * self.multiple if self.multiple else width


def width_rule(config) -> WidthRule:
    """The padding a model of this config needs (none for dense attention)."""
    model_type = getattr(config, "model_type", "")
    if model_type in ("longformer", "led"):
        window = config.attention_window
        return WidthRule(multiple=max(window) if isinstance(window, (list, tuple)) else window)
    if model_type == "big_bird" and config.attention_type == "block_sparse":
        return WidthRule(multiple=config.block_size, minimum=bigbird_sparse_minimum(config))
    return WidthRule()


def bigbird_sparse_minimum(config) -> int:
    """The shortest input BigBird runs block-sparse: one block past its own fallback threshold."""
    return (5 + 2 * config.num_random_blocks) * config.block_size + config.block_size


def fix_bigbird_attention(model, max_length: int) -> str | None:
    """Full attention from the start when no input can be long enough for block-sparse; the
    line to print when it changed."""
    config = model.config
    if config.model_type != "big_bird" or config.attention_type != "block_sparse":
        return None
    minimum = bigbird_sparse_minimum(config)
    if max_length >= minimum:
        return None
    model.base_model.set_attention_type("original_full")
    config.attention_type = "original_full"
    return (f"big_bird: inputs of at most {max_length} tokens are too short for block-sparse "
            f"attention (needs {minimum}); using full attention")


class PadToRule:
    """Wraps a collator: pads the encoder inputs of its batch to the model's width rule."""

    def __init__(self, collator, rule: WidthRule, pad_id: int, left: bool = False):
        self.collator, self.rule, self.pad_id, self.left = collator, rule, pad_id, left

    def __call__(self, features):
        import torch

        batch = self.collator(features)
        longest = batch["input_ids"].shape[1]
        gap = self.rule.width(longest) - longest
        if gap == 0:
            return batch
        for key, fill in INPUT_KEYS.items():
            if key in batch:
                value = self.pad_id if fill == "pad" else fill
                pad = (gap, 0) if self.left else (0, gap)
                batch[key] = torch.nn.functional.pad(batch[key], pad, value=value)
        return batch


def collator_for(collator, config, tokenizer):
    rule = width_rule(config)
    if rule == WidthRule():
        return collator
    return PadToRule(collator, rule, tokenizer.pad_token_id, left=tokenizer.padding_side == "left")


def pad_to_model(batch, config, tokenizer):
    """The same padding for a batch built outside a DataLoader (predict, attention maps)."""
    return collator_for(lambda same: same, config, tokenizer)(batch)
