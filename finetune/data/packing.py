"""`data.packing`: several short examples share one row of a training batch, so fewer rows and
less padding go through the model, while each example still sees only itself.

- Rows are filled first-fit by decreasing length, up to `data.max_length` tokens (classification)
  or `max_source_length + max_target_length` (decoder-only); every example restarts its
  position ids at 0.
- Classification (BERT-family encoders): a block-diagonal 4D attention mask keeps attention
  within each example, and each example's first token ([CLS]) is gathered out of the packed
  rows before the pooler and head, so the head and the loss see one row per example.
- Decoder-only: no attention mask at all; transformers builds the block-causal mask from the
  restarting position ids (masking_utils.find_packed_sequence_indices), and the first token of
  every example is left out of the loss so no example predicts the next one.

A batch keeps `training.batch_size` examples, so optimisation is unchanged: the same examples
in the same order give the same loss per example as without packing (tests/test_packing.py).
The keys starting with `packed_` are read by the hooks `install` puts on the model and never
reach the model's forward."""

from __future__ import annotations

from finetune.errors import ConfigError
from finetune.data.ignore_index import IGNORE_INDEX

CLS_KEY, EXAMPLES_KEY, TOKENS_KEY = "packed_cls_index", "packed_examples", "packed_tokens"


def bins(lengths: list[int], capacity: int) -> list[list[int]]:
    """Example indices per row: first-fit decreasing, no row over `capacity` tokens. An example
    longer than the capacity (a decoder-only prompt plus target can be) gets a row of its own."""
    capacity = max(capacity, *lengths)
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def _layout(features: list[dict], capacity: int):
    """(rows of example indices, width of the widest row)."""
    lengths = [len(f["input_ids"]) for f in features]
    rows = bins(lengths, capacity)
    return rows, max(sum(lengths[i] for i in row) for row in rows)


def classification_collator(pad_id: int, capacity: int):
    def collate(features: list[dict]) -> dict:
        import torch

        rows, width = _layout(features, capacity)
        n_rows = len(rows)
        ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
        types = torch.zeros((n_rows, width), dtype=torch.long)
        positions = torch.zeros((n_rows, width), dtype=torch.long)
        segment = torch.full((n_rows, width), -1, dtype=torch.long)  # -1: padding
        cls_index, labels = [], []
        for r, row in enumerate(rows):
            at = 0
            for s, i in enumerate(row):
                f, n = features[i], len(features[i]["input_ids"])
                ids[r, at:at + n] = torch.tensor(f["input_ids"])
                if "token_type_ids" in f:
                    types[r, at:at + n] = torch.tensor(f["token_type_ids"])
                positions[r, at:at + n] = torch.arange(n)
                segment[r, at:at + n] = s
                cls_index.append(r * width + at)
                labels.append(f["labels"])
                at += n
        same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
        # Padding queries attend to themselves only, so no softmax row is empty (NaN).
        same |= torch.eye(width, dtype=torch.bool)[None]
        # Additive float mask: the form every attention kernel (eager and SDPA) reads alike.
        mask = torch.zeros(same.shape, dtype=torch.float32).masked_fill(~same, torch.finfo(torch.float32).min)
        batch = {
            "input_ids": ids, "attention_mask": mask[:, None], "position_ids": positions,
            "labels": torch.tensor(labels), CLS_KEY: torch.tensor(cls_index),
            EXAMPLES_KEY: len(features), TOKENS_KEY: (segment >= 0).sum(),
        }
        if any("token_type_ids" in f for f in features):
            batch["token_type_ids"] = types
        return batch

    return collate


def decoder_collator(pad_id: int, capacity: int):
    def collate(features: list[dict]) -> dict:
        import torch

        rows, width = _layout(features, capacity)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        tokens = 0
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                f, n = features[i], len(features[i]["input_ids"])
                ids[r, at:at + n] = torch.tensor(f["input_ids"])
                labels[r, at + 1:at + n] = torch.tensor(f["labels"][1:])  # never predict across a boundary
                positions[r, at:at + n] = torch.arange(n)
                at += n
                tokens += n
            # The tail of padding is a sequence of its own, masked out of the loss.
            positions[r, at:] = torch.arange(width - at)
        return {"input_ids": ids, "labels": labels, "position_ids": positions,
                EXAMPLES_KEY: len(features), TOKENS_KEY: torch.tensor(tokens)}

    return collate


def collator(kind: str, tokenizer, capacity: int):
    make = classification_collator if kind == "classification" else decoder_collator
    return make(tokenizer.pad_token_id, capacity)


def install(model, kind: str) -> None:
    """Hooks that strip the `packed_` keys from the model's inputs and, for classification,
    hand the head one [CLS] row per example."""
    import inspect

    from finetune.data.long_inputs import WidthRule, width_rule

    if kind not in ("classification", "causal"):
        raise ConfigError(
            "data.packing: packs classification and decoder-only training; an encoder-decoder model reads "
            "source and target apart, so set data.packing: false for it"
        )
    if width_rule(model.config) != WidthRule():
        raise ConfigError(f"data.packing: {model.config.model_type} pads its inputs to an attention window, "
                          "which packing would break: set data.packing: false")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    if kind == "classification":
        body = getattr(base, "base_model", None)
        encoder = getattr(body, "encoder", None)
        if encoder is None or "position_ids" not in inspect.signature(body.forward).parameters:
            raise ConfigError(
                f"data.packing: classification packing needs a BERT-family encoder that takes position ids "
                f"(the head reads the first token); {type(base).__name__} is not one: set data.packing: false"
            )
    state: dict = {}

    def strip(_module, args, kwargs):
        state["cls"] = kwargs.pop(CLS_KEY, None)
        kwargs.pop(EXAMPLES_KEY, None)
        if kwargs.pop(TOKENS_KEY, None) is not None and kind == "causal":
            # With a cache, transformers reads positions as a continuation and builds a plain
            # causal mask: examples in a row would see each other.
            kwargs["use_cache"] = False
        return args, kwargs

    def gather_first_tokens(_module, _args, output):
        index = state.get("cls")
        if index is None:
            return output
        hidden = output[0]
        first = hidden.reshape(-1, hidden.shape[-1])[index.to(hidden.device)][:, None]  # [examples, 1, hidden]
        output.last_hidden_state = first
        return output

    model.register_forward_pre_hook(strip, with_kwargs=True)
    if kind == "classification":
        encoder.register_forward_hook(gather_first_tokens)
