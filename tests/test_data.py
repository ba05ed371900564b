"""Data loading for each file format, label mapping, split carving and the tokenization cache."""

from __future__ import annotations

import json

import pytest

from finetune.config import DataSection, EvalSection
from finetune.data import load_splits
from finetune.errors import DataError
from finetune.tasks.classification import ClassificationTask

ROWS = [("a gripping, funny film", "positive"), ("dull and far too long", "negative")] * 10


def _write(tmp_path, fmt: str, rows=ROWS, name="train") -> str:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["text", "label"])
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "json":
        path.write_text(json.dumps(frame.to_dict(orient="records")))
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        frame.to_parquet(path)
    return str(path)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_each_format_loads_and_carves_validation(tmp_path, fmt):
    data = DataSection(files={"train": _write(tmp_path, fmt)}, validation_fraction=0.25)
    splits = load_splits(data, seed=1)
    assert len(splits["train"]) == 15 and len(splits["validation"]) == 5
    assert set(splits["train"].column_names) == {"text", "label"}
    # Carving depends only on the seed.
    again = load_splits(data, seed=1)
    assert again["validation"]["text"] == splits["validation"]["text"]


def test_tsv_keeps_stray_quotes(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('text\tlabel\n"odd quote here\t1\nplain\t0\n')
    splits = load_splits(DataSection(files={"train": str(path), "validation": str(path)}), seed=0)
    assert splits["train"][0]["text"] in ('"odd quote here', "plain")
    assert '"odd quote here' in splits["validation"]["text"]


def test_max_samples_and_shuffled_train_slice(tmp_path):
    rows = [(f"text {i}", "positive" if i < 50 else "negative") for i in range(100)]  # sorted by label
    data = DataSection(files={"train": _write(tmp_path, "csv", rows), "validation": _write(tmp_path, "csv", rows, "dev")},
                       max_train_samples=20, max_eval_samples=7)
    splits = load_splits(data, seed=0)
    assert len(splits["train"]) == 20 and len(splits["validation"]) == 7
    assert len(set(splits["train"]["label"])) == 2  # not just the first label


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: {"train": str(p / "missing.csv")}, "data.files.train: file"),
        (lambda p: {"train": _empty(p)}, "is empty"),
        (lambda p: {"train": _write(p, "csv"), "validation": _write(p, "json", name="v")}, "mixed formats"),
        (lambda p: {"train": _renamed(p)}, "set data.format"),
    ],
)
def test_file_problems_are_named(tmp_path, setup, message):
    with pytest.raises(DataError, match=message):
        load_splits(DataSection(files=setup(tmp_path)), seed=0)


def _empty(p):
    (p / "e.csv").write_text("")
    return str(p / "e.csv")


def _renamed(p):
    path = p / "data.txt"
    path.write_text("text,label\nx,1\n")
    return str(path)


def _task(data: DataSection, splits):
    task = ClassificationTask(data, EvalSection())
    task.fit_to_data(splits)
    return task


def test_string_labels_are_sorted_names(tmp_path):
    data = DataSection(files={"train": _write(tmp_path, "csv")})
    task = _task(data, load_splits(data, seed=0))
    assert task.label_names == ["negative", "positive"]
    assert task.model_kwargs()["label2id"] == {"negative": 0, "positive": 1}


def test_integer_labels_take_label_names(tmp_path):
    rows = [(t, int(lab == "positive")) for t, lab in ROWS]
    data = DataSection(files={"train": _write(tmp_path, "csv", rows)}, label_names=["neg", "pos"])
    task = _task(data, load_splits(data, seed=0))
    assert task.model_kwargs()["id2label"] == {0: "neg", 1: "pos"}


def test_unknown_label_in_eval_split_is_named(tmp_path, tiny_bert):
    from transformers import AutoTokenizer

    dev = _write(tmp_path, "csv", [("meh", "neutral"), ("great", "positive")], name="dev")
    data = DataSection(files={"train": _write(tmp_path, "csv"), "validation": dev})
    splits = load_splits(data, seed=0)
    task = _task(data, splits)
    with pytest.raises(DataError, match=r"label 'neutral' in column 'label' is not one of the known labels"):
        task.encode(splits["validation"], "validation", AutoTokenizer.from_pretrained(tiny_bert))


def test_missing_column_is_named(tmp_path):
    data = DataSection(files={"train": _write(tmp_path, "csv")}, text_column="sentence")
    with pytest.raises(DataError, match=r"column 'sentence' not found.*\['text', 'label'\]"):
        _task(data, load_splits(data, seed=0))


def test_tokenization_cache_is_reused_and_invalidated(tmp_path, tiny_bert, monkeypatch):
    from transformers import AutoTokenizer

    from finetune.data import cache_root

    monkeypatch.setenv("FINETUNE_CACHE", str(tmp_path / "cache"))
    data = DataSection(files={"train": _write(tmp_path, "csv")}, max_length=16)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    splits = load_splits(data, seed=0)
    task = _task(data, splits)

    def entries():
        return sorted(p.name for p in cache_root(data).glob("tokenized-*.arrow"))

    first = task.encode(splits["train"], "train", tokenizer)
    assert len(entries()) == 1
    task.encode(splits["train"], "train", tokenizer)
    assert len(entries()) == 1  # same inputs: the cached file is reused

    shorter = data.model_copy(update={"max_length": 4})
    task.data = shorter
    second = task.encode(splits["train"], "train", tokenizer)
    assert len(entries()) == 2
    assert max(len(x) for x in second["input_ids"]) == 4 < max(len(x) for x in first["input_ids"])

    tokenizer.add_tokens(["gripping"])  # a changed vocabulary must not reuse old ids
    task.encode(splits["train"], "train", tokenizer)
    assert len(entries()) == 3
