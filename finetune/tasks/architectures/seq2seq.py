"""Encoder-decoder models (T5, BART, Marian): the source goes to the encoder, the target is the
decoder's label sequence."""

from __future__ import annotations

from finetune.data.splits import cached_map
from finetune.data.text_cut import cut
from finetune.tasks.architectures.generator import IGNORE_INDEX, GeneratorArch


class Seq2SeqArch(GeneratorArch):
    kind = "seq2seq"
    auto_class = "AutoModelForSeq2SeqLM"

    def encode(self, spec, ds, split: str, tokenizer):
        spec.check_columns(ds, split)
        d = spec.data

        def tokenize(batch):
            out = tokenizer(cut(spec.sources(batch), d.max_source_length), truncation=True,
                            max_length=d.max_source_length)
            # text_target: tokenizers with a separate target vocabulary (Marian) use it here.
            labels = tokenizer(text_target=cut(spec.targets(batch), d.max_target_length), truncation=True,
                               max_length=d.max_target_length)
            out["labels"] = labels["input_ids"]
            return out

        return cached_map(ds, tokenize, key=self.cache_key(spec, tokenizer), data=d)

    def collator(self, tokenizer, pad_to_multiple_of: int | None):
        from transformers import DataCollatorForSeq2Seq

        # Without a model the collator leaves decoder_input_ids out; T5/BART build them by
        # shifting the labels, after turning -100 back into the pad id.
        return DataCollatorForSeq2Seq(
            tokenizer, label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=pad_to_multiple_of
        )

    def prompt_ids(self, spec, sources, tokenizer):
        limit = spec.data.max_source_length
        return tokenizer(cut(sources, limit), truncation=True, max_length=limit)["input_ids"]

    def decode(self, generated, prompt_width: int, tokenizer):
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        specials = set(tokenizer.all_special_ids)
        counts = [sum(1 for t in row if t not in specials) for row in generated.tolist()]
        return [t.strip() for t in texts], counts
