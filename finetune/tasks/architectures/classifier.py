"""A sequence-classification head on any model (BERT-style encoders, GPT-2 and Llama too): the
text (and its pair) become tokens with a label id, and a batch becomes class probabilities."""

from __future__ import annotations

from finetune.data.splits import cached_map, require_columns, tokenizer_fingerprint
from finetune.data.text_cut import char_limit, cut


class ClassifierArch:
    kind = "classification"  # also peft's task kind
    auto_class = "AutoModelForSequenceClassification"

    def prepare_tokenizer(self, tokenizer) -> None:
        # GPT-2 and Llama tokenizers have no pad token; batches need one, and their
        # sequence-classification heads find each row's last token by the pad id.
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token

    def longest_input(self, data) -> int:
        return data.max_length

    def encode(self, spec, ds, split: str, tokenizer):
        data = spec.data
        require_columns(ds, spec.columns(), data, split)
        lookup = spec.label_ids(ds, split)
        text, pair, label = data.text_column, data.text_pair_column, data.label_column
        max_length = data.max_length

        def tokenize(batch):
            texts = cut([t if t is not None else "" for t in batch[text]], max_length)
            pairs = cut([t if t is not None else "" for t in batch[pair]], max_length) if pair else None
            out = tokenizer(texts, pairs, truncation=True, max_length=max_length)
            out["labels"] = [lookup[v] for v in batch[label]]
            return out

        key = {
            "task": self.kind,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "max_length": max_length,
            "cut_chars": char_limit(max_length),
            "columns": [text, pair, label],
            "labels": spec.label_names,
        }
        return cached_map(ds, tokenize, key=key, data=data)

    def collator(self, tokenizer, pad_to_multiple_of: int | None):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def scored_batch(self, model, batch) -> list[dict]:
        """Teacher-forced rows of one labelled batch: the predicted class, its probability, the
        gold label and the example's own loss."""
        import torch

        out = model(**batch)
        logits = out.logits.float()
        top_prob, top = torch.softmax(logits, dim=-1).max(dim=-1)
        # Per example: a batch mean would also count the duplicates Accelerate pads the last
        # shard with, which gather_for_metrics drops only as rows.
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
        return [
            {"predicted": p, "probability": pr, "label": g, "loss": lo}
            for p, pr, g, lo in zip(top.tolist(), top_prob.tolist(), batch["labels"].tolist(), loss.tolist())
        ]

    def prompt_rows(self, spec, texts: list[str], tokenizer) -> list[dict]:
        return [{"text": t} for t in texts]

    def prompt_collator(self, spec, tokenizer, model_config):
        from finetune.data.long_inputs import pad_to_model

        def collate(rows):
            texts = cut([r["text"] for r in rows], spec.data.max_length)
            batch = tokenizer(texts, truncation=True, max_length=spec.data.max_length,
                              padding=True, return_tensors="pt")
            return pad_to_model(batch, model_config, tokenizer)  # as in training

        return collate

    def answer_batch(self, model, batch, tokenizer) -> list[dict]:
        """Every class's probability for each text of an unlabelled batch."""
        import torch

        probs = torch.softmax(model(**batch).logits.float(), dim=-1).cpu()
        return [{"probabilities": row} for row in probs.tolist()]

    def save_alongside(self, model, tokenizer, directory) -> None:
        pass
