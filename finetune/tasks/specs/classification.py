"""Sentence (or sentence-pair) classification, `sentiment` being its other name: which columns
hold text and labels, the label set, and how predictions are scored."""

from __future__ import annotations

from typing import Any

from finetune.data.column_checks import ROW_NOTE, check_label_spellings, check_labels, check_text, row_of, spelling
from finetune.configuration.config import DataSection
from finetune.data.splits import require_columns
from finetune.data.text_cut import cut
from finetune.errors import DataError


class ClassificationSpec:
    names = ("classification", "sentiment")  # the first is the one shown
    generates = False
    metrics = ("accuracy", "f1")  # the first picks the best checkpoint unless eval.best_metric says otherwise
    default_template = None  # classifiers read the text as it is

    label_names: list[str]

    def __init__(self, data: DataSection):
        self.data = data
        self._spellings: dict = {}  # the labels of the splits checked so far, by spelling

    def columns(self) -> list[str]:
        return [self.data.text_column, self.data.text_pair_column, self.data.label_column]

    def texts(self, batch: dict[str, list]) -> list[str]:
        """What a tokenizer learnt from the data must read well: the text columns (as far as the
        model will read them)."""
        columns = [c for c in (self.data.text_column, self.data.text_pair_column) if c]
        return cut([t for c in columns for t in batch[c] if isinstance(t, str)], self.data.max_length)

    # ------------------------------------------------------------------ labels
    def check_split(self, ds, split: str) -> None:
        d = self.data
        require_columns(ds, self.columns(), d, split)
        check_text(ds, d.text_column, self._where(split), "data.text_column")
        if d.text_pair_column:
            check_text(ds, d.text_pair_column, self._where(split), "data.text_pair_column")
        check_labels(ds, d.label_column, self._where(split))
        check_label_spellings(ds, d.label_column, self._where(split), self._spellings)
        if d.label_names is not None:
            for label in ds.unique(d.label_column):
                if isinstance(label, str) and label not in d.label_names:
                    self._refuse_respelling(label, d.label_names, "data.label_names", ds, split)

    def fit_to_data(self, splits) -> None:
        train = splits[self.data.train_split]
        require_columns(train, self.columns(), self.data, self.data.train_split)
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

    def _refuse_respelling(self, label: str, known: list[str], known_as: str, ds, split: str) -> None:
        """A label missing from `known` only because of its case or surrounding whitespace gets
        its own message (with its row), not the general "unknown label" one."""
        same = [k for k in known if spelling(k) == spelling(label)]
        if same:
            column = self.data.label_column
            raise DataError(
                f"{self._where(split)}: column '{column}', row {row_of(ds, column, label) + 1} {ROW_NOTE}: "
                f"label {label!r} differs from {same[0]!r} in {known_as} only by case or surrounding "
                f"whitespace; write it {same[0]!r}"
            )

    def label_ids(self, ds, split: str) -> dict[Any, int]:
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
            if isinstance(raw, str):
                self._refuse_respelling(raw, self.label_names, "the model's labels", ds, split)
            raise DataError(
                f"{self._where(split)}: label {value!r} in column '{self.data.label_column}' "
                f"is not one of the known labels {self.label_names}; fix the data or data.label_names"
            )
        return lookup

    # ------------------------------------------------------------------ score
    def score(self, scored: list[dict], answered: list[dict], raw):
        """Accuracy, macro F1 and loss from the teacher-forced rows (in data order), and one
        record per example."""
        import torch

        from finetune.metrics import load_metric

        pred = [r["predicted"] for r in scored]
        gold = [r["label"] for r in scored]
        metrics = {
            "accuracy": load_metric("accuracy").compute(predictions=pred, references=gold)["accuracy"],
            "f1": load_metric("f1").compute(
                predictions=pred, references=gold, average="macro", labels=list(range(len(self.label_names)))
            )["f1"],
            "loss": float(torch.tensor([r["loss"] for r in scored]).mean()),
            "samples": len(pred),
        }
        names = self.label_names
        records = []
        for i, r in enumerate(scored):
            row = raw[i]
            record = {"text": row[self.data.text_column]}
            if self.data.text_pair_column:
                record["text_pair"] = row[self.data.text_pair_column]
            record.update({"label": names[r["label"]], "predicted": names[r["predicted"]],
                           "probability": round(r["probability"], 6)})
            records.append(record)
        return metrics, records

    def answers(self, texts: list[str], rows: list[dict]) -> list[dict]:
        """`finetune predict`: the likeliest label of each text, with every label's probability."""
        answers = []
        for text, row in zip(texts, rows):
            probs = row["probabilities"]
            best = max(range(len(probs)), key=probs.__getitem__)
            answers.append({
                "text": text,
                "label": self.label_names[best],
                "score": round(probs[best], 6),  # pipeline("text-classification")'s name
                "probabilities": {n: round(p, 6) for n, p in zip(self.label_names, probs)},
            })
        return answers

    def write_figures(self, run_dir, split: str, records: list[dict], weights: str | None = None):
        from finetune.storage import run_dir as rd
        from finetune.metrics.confusion_figure import confusion_matrix_png

        return [confusion_matrix_png(records, self.label_names, run_dir / rd.confusion_file(split, weights))]

    def _where(self, split: str) -> str:
        if self.data.files:
            return self.data.files.get(split, ", ".join(self.data.files.values()))
        return f"dataset '{self.data.dataset}' split '{split}'"


def _as_id(value: Any) -> Any:
    """A whole-number float label (checked by check_labels) as the int it stands for."""
    return int(value) if isinstance(value, float) else value
