"""Sentence (or sentence-pair) classification: sentiment and any other label set."""

from __future__ import annotations

from typing import Any

from finetune.column_checks import check_labels, check_text
from finetune.data import cached_map, require_columns, tokenizer_fingerprint
from finetune.errors import DataError
from finetune.tasks.base import Task


class ClassificationTask(Task):
    kind = "classification"
    auto_class = "AutoModelForSequenceClassification"
    default_metric = "accuracy"

    label_names: list[str]

    # ------------------------------------------------------------------ labels
    def check_split(self, ds, split: str) -> None:
        d = self.data
        require_columns(ds, self._columns(), d, split)
        check_text(ds, d.text_column, self._where(split), "data.text_column")
        if d.text_pair_column:
            check_text(ds, d.text_pair_column, self._where(split), "data.text_pair_column")
        check_labels(ds, d.label_column, self._where(split))

    def fit_to_data(self, splits) -> None:
        train = splits[self.data.train_split]
        require_columns(train, self._columns(), self.data, self.data.train_split)
        # Whole-number floats (1.0, as pandas writes an int column with gaps) are class ids.
        values = [_as_id(v) for v in train.unique(self.data.label_column)]
        self.label_names = self._label_names(list(dict.fromkeys(values)))

    def restore(self, model_config) -> None:
        id2label = model_config.id2label
        self.label_names = [str(id2label[i]) for i in range(len(id2label))]

    def model_kwargs(self) -> dict[str, Any]:
        return {
            "num_labels": len(self.label_names),
            "id2label": dict(enumerate(self.label_names)),
            "label2id": {name: i for i, name in enumerate(self.label_names)},
        }

    def _label_names(self, values: list) -> list[str]:
        data = self.data  # check_labels has refused nulls, fractions and lists already
        if len(values) < 2:
            raise DataError(
                f"{self._where(data.train_split)}: column '{data.label_column}' has a single "
                f"label {values[0]!r} in every row; classification needs at least two classes"
            )
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            count = max(values) + 1
            if min(values) < 0:
                raise DataError(
                    f"{self._where(data.train_split)}: column '{data.label_column}' has negative "
                    f"label {min(values)}; integer labels must be 0..n-1"
                )
            if data.label_names is not None:
                if len(data.label_names) < count:
                    raise DataError(
                        f"data.label_names: names {count} labels but column "
                        f"'{data.label_column}' has labels up to {count - 1}; add the missing names"
                    )
                return list(data.label_names)
            return [str(i) for i in range(count)]
        names = sorted(str(v) for v in values)
        if data.label_names is not None:
            unknown = [n for n in names if n not in data.label_names]
            if unknown:
                raise DataError(
                    f"{self._where(data.train_split)}: label '{unknown[0]}' in column "
                    f"'{data.label_column}' is not in data.label_names {data.label_names}"
                )
            return list(data.label_names)
        return names

    def _label_ids(self, ds, split: str) -> dict[Any, int]:
        """Map every label value of this split to an id, refusing labels the model lacks."""
        lookup: dict[Any, int] = {name: i for i, name in enumerate(self.label_names)}
        for raw in ds.unique(self.data.label_column):
            value = _as_id(raw)
            if isinstance(value, int) and not isinstance(value, bool) and str(value) not in lookup:
                if 0 <= value < len(self.label_names):
                    lookup[raw] = value
                    continue
            elif str(value) in lookup:
                lookup[raw] = lookup[str(value)]
                continue
            raise DataError(
                f"{self._where(split)}: label {value!r} in column '{self.data.label_column}' "
                f"is not one of the known labels {self.label_names}; fix the data or data.label_names"
            )
        return lookup

    def prepare_tokenizer(self, tokenizer) -> None:
        # GPT-2 and Llama tokenizers have no pad token; batches need one, and their
        # sequence-classification heads find each row's last token by the pad id.
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token

    # ------------------------------------------------------------------ tokenize
    def _columns(self) -> list[str]:
        return [self.data.text_column, self.data.text_pair_column, self.data.label_column]

    def encode(self, ds, split: str, tokenizer):
        require_columns(ds, self._columns(), self.data, split)
        lookup = self._label_ids(ds, split)
        text, pair, label = self.data.text_column, self.data.text_pair_column, self.data.label_column
        max_length = self.data.max_length

        def tokenize(batch):
            texts = [t if t is not None else "" for t in batch[text]]
            pairs = [t if t is not None else "" for t in batch[pair]] if pair else None
            out = tokenizer(texts, pairs, truncation=True, max_length=max_length)
            out["labels"] = [lookup[v] for v in batch[label]]
            return out

        key = {
            "task": self.kind,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "max_length": max_length,
            "columns": [text, pair, label],
            "labels": self.label_names,
        }
        return cached_map(ds, tokenize, key=key, data=self.data)

    def collator(self, tokenizer, pad_to_multiple_of: int | None):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, model, loader, raw, accelerator, tokenizer):
        import torch

        from finetune.metrics import load_metric

        model.eval()
        preds, golds, probs, losses = [], [], [], []
        with torch.no_grad():
            for batch in loader:
                out = model(**batch)
                p = torch.softmax(out.logits.float(), dim=-1)
                top_prob, top = p.max(dim=-1)
                # Per example: a batch mean would also count the duplicates Accelerate pads
                # the last shard with, which gather_for_metrics drops only as rows.
                loss = torch.nn.functional.cross_entropy(out.logits.float(), batch["labels"], reduction="none")
                top, top_prob, gold, loss = accelerator.gather_for_metrics(
                    (top, top_prob, batch["labels"], loss)
                )
                preds.append(top.cpu())
                probs.append(top_prob.cpu())
                golds.append(gold.cpu())
                losses.append(loss.cpu())
        model.train()
        pred = torch.cat(preds).tolist()
        gold = torch.cat(golds).tolist()
        prob = torch.cat(probs).tolist()
        metrics = {
            "accuracy": load_metric("accuracy").compute(predictions=pred, references=gold)["accuracy"],
            "f1": load_metric("f1").compute(
                predictions=pred, references=gold, average="macro", labels=list(range(len(self.label_names)))
            )["f1"],
            "loss": float(torch.cat(losses).mean()),
            "samples": len(pred),
        }
        names = self.label_names
        records = []
        for i, (g, p_, pr) in enumerate(zip(gold, pred, prob)):
            row = raw[i]
            record = {"text": row[self.data.text_column]}
            if self.data.text_pair_column:
                record["text_pair"] = row[self.data.text_pair_column]
            record.update({"label": names[g], "predicted": names[p_], "probability": round(pr, 6)})
            records.append(record)
        return metrics, records

    # ------------------------------------------------------------------ predict / figures
    def predict(self, model, tokenizer, texts: list[str], batch_size: int = 32) -> list[dict]:
        import torch

        from finetune.long_inputs import pad_to_model

        device = next(model.parameters()).device
        model.eval()
        answers = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            batch = tokenizer(chunk, truncation=True, max_length=self.data.max_length,
                              padding=True, return_tensors="pt")
            batch = pad_to_model(batch, model.config, tokenizer).to(device)  # as in training
            with torch.no_grad():
                probs = torch.softmax(model(**batch).logits.float(), dim=-1).cpu()
            for text, row in zip(chunk, probs.tolist()):
                best = max(range(len(row)), key=row.__getitem__)
                answers.append({
                    "text": text,
                    "label": self.label_names[best],
                    "probability": round(row[best], 6),
                    "probabilities": {n: round(p, 6) for n, p in zip(self.label_names, row)},
                })
        return answers

    def write_figures(self, run_dir, split: str, records: list[dict]):
        from finetune import run_dir as rd
        from finetune.plots import confusion_matrix_png

        return [confusion_matrix_png(records, self.label_names, run_dir / rd.confusion_file(split))]

    def _where(self, split: str) -> str:
        if self.data.files:
            return self.data.files.get(split, ", ".join(self.data.files.values()))
        return f"dataset '{self.data.dataset}' split '{split}'"


def _as_id(value: Any) -> Any:
    """A whole-number float label (checked by check_labels) as the int it stands for."""
    return int(value) if isinstance(value, float) else value
