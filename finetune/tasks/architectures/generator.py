"""What encoder-decoder and decoder-only models share when they generate text: the decoding
settings, batches of prompts, the teacher-forced loss. `seq2seq.py` and `decoder_only.py` only
differ in how a pair becomes tokens and how generated tokens become text."""

from __future__ import annotations

from finetune.configuration.config import GenerationSection
from finetune.data.ignore_index import IGNORE_INDEX
from finetune.data.splits import tokenizer_fingerprint


class GeneratorArch:
    kind: str  # "seq2seq" | "causal": also peft's task kind
    auto_class: str
    pad_left = False  # decoder-only models continue the prompt, so its end must line up

    def __init__(self, generation: GenerationSection):
        self.generation = generation

    def prepare_tokenizer(self, tokenizer) -> None:
        """Fix what the architecture needs of the tokenizer (pad token, padding side)."""

    def longest_input(self, data) -> int:
        return data.max_source_length

    def cache_key(self, spec, tokenizer) -> dict:
        """Everything that changes the tokenized rows; a change makes a new cache entry."""
        return {"task": f"{self.kind}-{spec.names[0]}", "tokenizer": tokenizer_fingerprint(tokenizer),
                **spec.cache_key()}

    def prompt_ids(self, spec, sources: list[str], tokenizer) -> list[list[int]]:
        raise NotImplementedError

    def decode(self, generated, prompt_width: int, tokenizer) -> tuple[list[str], list[int]]:
        """The text of each generated row and its count of generated tokens."""
        raise NotImplementedError

    def generation_config(self, model_config, tokenizer):
        from transformers import GenerationConfig

        g = self.generation
        sampling = {"temperature": g.temperature, "top_p": g.top_p, "top_k": g.top_k} if g.do_sample else {}
        return GenerationConfig(
            num_beams=g.num_beams,
            max_new_tokens=g.max_new_tokens,
            min_new_tokens=g.min_new_tokens,
            length_penalty=g.length_penalty,
            no_repeat_ngram_size=g.no_repeat_ngram_size,
            repetition_penalty=g.repetition_penalty,
            do_sample=g.do_sample,
            early_stopping=g.num_beams > 1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=getattr(model_config, "decoder_start_token_id", None),
            bos_token_id=getattr(model_config, "bos_token_id", None),
            **sampling,
        )

    def save_alongside(self, model, tokenizer, directory) -> None:
        # generate() and pipeline() read generation_config.json: the saved model then decodes
        # as `finetune eval` did, not with the checkpoint's defaults.
        self.generation_config(base_config(model), tokenizer).save_pretrained(directory)

    def scored_batch(self, model, batch) -> list[dict]:
        """Teacher-forced loss (cheap, and comparable with the train loss) as each row's sum over
        its target tokens and their count: the split's loss is then the mean over all its tokens,
        whatever the batching. A batch mean would also count the copies Accelerate pads the last
        shard with, which gather_for_metrics drops only as rows."""
        import torch.nn.functional as F

        logits, labels = model(**batch).logits.float(), batch["labels"]
        if self.kind == "causal":  # the logits at position t predict the label at t + 1
            logits, labels = logits[:, :-1], labels[:, 1:]
        per_token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
        counted = labels != IGNORE_INDEX
        return [{"loss_sum": s, "tokens": n}
                for s, n in zip(per_token.sum(dim=1).tolist(), counted.sum(dim=1).tolist())]

    def prompt_rows(self, spec, sources: list[str], tokenizer) -> list[dict]:
        """One row per prompt, carrying its position so answers can go back in data order."""
        return [{"index": i, "input_ids": ids} for i, ids in enumerate(self.prompt_ids(spec, sources, tokenizer))]

    def prompt_collator(self, spec, tokenizer, model_config):
        pad_id, left = tokenizer.pad_token_id, self.pad_left
        return lambda rows: pad_batch(rows, pad_id, left=left)

    def answer_batch(self, model, batch, tokenizer) -> list[dict]:
        """Generated text for each prompt of the batch, with the run's own decoding settings."""
        out = model.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            generation_config=self.generation_config(base_config(model), tokenizer),
        )
        decoded, counts = self.decode(out, batch["input_ids"].shape[1], tokenizer)
        return [{"index": i, "generated": text, "length": n}
                for i, text, n in zip(batch["index"].tolist(), decoded, counts)]


def pad_batch(rows: list[dict], pad_id: int, *, left: bool, label_pad: int = IGNORE_INDEX) -> dict:
    """Pad input_ids (and labels, if present) to the longest row, on the left or the right."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    out: dict[str, list] = {"input_ids": [], "attention_mask": []}
    has_labels = "labels" in rows[0]
    label_width = max(len(r["labels"]) for r in rows) if has_labels else 0
    if has_labels:
        out["labels"] = []

    def pad(seq, fill, size):
        gap = [fill] * (size - len(seq))
        return gap + list(seq) if left else list(seq) + gap

    for r in rows:
        out["input_ids"].append(pad(r["input_ids"], pad_id, width))
        out["attention_mask"].append(pad([1] * len(r["input_ids"]), 0, width))
        if has_labels:
            out["labels"].append(pad(r["labels"], label_pad, label_width))
    batch = {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
    if "index" in rows[0]:
        batch["index"] = torch.tensor([r["index"] for r in rows], dtype=torch.long)
    return batch


def base_config(model):
    """The transformers config under a PEFT wrapper (or the model's own)."""
    base = getattr(model, "get_base_model", None)
    return (base() if base else model).config
