"""Decoder-only models (GPT-2, Llama-style): one sequence, prompt then target then EOS; only the
target tokens count in the loss."""

from __future__ import annotations

from finetune.data.splits import cached_map
from finetune.data.text_cut import cut
from finetune.errors import ModelError
from finetune.tasks.architectures.generator import IGNORE_INDEX, GeneratorArch, pad_batch

_MARK = "\x00"  # stands for the source while the template is split around it


class DecoderOnlyArch(GeneratorArch):
    kind = "causal"
    auto_class = "AutoModelForCausalLM"
    pad_left = True

    def prepare_tokenizer(self, tokenizer) -> None:
        if tokenizer.eos_token_id is None:
            raise ModelError(
                "the tokenizer has no EOS token, so a decoder-only model could not learn where a "
                "target ends; use a checkpoint whose tokenizer defines eos_token"
            )
        if tokenizer.pad_token is None:  # GPT-2: padding is masked out, any id will do
            tokenizer.pad_token = tokenizer.eos_token
        # Saved with the model, so batched generation elsewhere (pipeline) pads correctly too.
        tokenizer.padding_side = "left"

    def prompt_ids(self, spec, sources, tokenizer):
        """Template text before and after {source}, with the source cut to max_source_length
        tokens: truncating the whole prompt would cut off the cue where the target starts."""
        source_lang, target_lang = spec.languages()
        filled = spec.template().format(source=_MARK, source_lang=source_lang, target_lang=target_lang)
        before, _, after = filled.partition(_MARK)
        head = tokenizer(before)["input_ids"] if before else tokenizer("")["input_ids"]
        tail = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
        limit = spec.data.max_source_length
        bodies = tokenizer(cut(sources, limit), add_special_tokens=False, truncation=True, max_length=limit)["input_ids"]
        return [head + body + tail for body in bodies]

    def encode(self, spec, ds, split: str, tokenizer):
        spec.check_columns(ds, split)
        d = spec.data
        eos = tokenizer.eos_token_id

        def tokenize(batch):
            prompts = self.prompt_ids(spec, spec.sources(batch), tokenizer)
            targets = tokenizer(
                cut(spec.targets(batch), d.max_target_length), add_special_tokens=False, truncation=True,
                max_length=max(d.max_target_length - 1, 1),
            )["input_ids"]
            ids, labels = [], []
            for prompt, target in zip(prompts, targets):
                target = target + [eos]  # the model learns to stop
                ids.append(prompt + target)
                labels.append([IGNORE_INDEX] * len(prompt) + target)
            return {"input_ids": ids, "labels": labels}

        key = {**self.cache_key(spec, tokenizer), "template": spec.template()}
        return cached_map(ds, tokenize, key=key, data=d)

    def collator(self, tokenizer, pad_to_multiple_of: int | None):
        pad_id = tokenizer.pad_token_id
        # Training pads on the right: positions then count from the first real token.
        return lambda rows: pad_batch(rows, pad_id, left=False)

    def decode(self, generated, prompt_width: int, tokenizer):
        eos = tokenizer.eos_token_id
        texts, counts = [], []
        for row in generated[:, prompt_width:].tolist():
            if eos in row:
                row = row[: row.index(eos)]
            counts.append(len(row))
            texts.append(tokenizer.decode(row, skip_special_tokens=True).strip())
        return texts, counts
