"""Data loading for each file format, label mapping, split carving and the tokenization cache."""

from __future__ import annotations

import json

import pytest

from finetune.configuration.config import DataSection, EvalSection
from finetune.data.splits import load_splits
from finetune.errors import DataError
from finetune.tasks.architectures.classifier import ClassifierArch
from finetune.tasks.specs.classification import ClassificationSpec
from finetune.tasks.task import Task

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
    task = Task(ClassificationSpec(data), ClassifierArch(), EvalSection())
    task.fit_to_data(splits)
    return task


def test_string_labels_are_sorted_names(tmp_path):
    data = DataSection(files={"train": _write(tmp_path, "csv")})
    task = _task(data, load_splits(data, seed=0))
    assert task.spec.label_names == ["negative", "positive"]
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

    from finetune.data.splits import cache_root

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
    task.spec.data = shorter
    second = task.encode(splits["train"], "train", tokenizer)
    assert len(entries()) == 2
    assert max(len(x) for x in second["input_ids"]) == 4 < max(len(x) for x in first["input_ids"])

    tokenizer.add_tokens(["gripping"])  # a changed vocabulary must not reuse old ids
    task.encode(splits["train"], "train", tokenizer)
    assert len(entries()) == 3


# ----------------------------------------------------------------------------- column checks


def _checked(tmp_path, text: str | bytes, name="t.jsonl", task=None, **data_keys):
    """load_splits with the task's checks, as `train` runs it; returns the task."""
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    data = DataSection(files={"train": str(path), "validation": str(path)}, **data_keys)
    task = task(data) if task else Task(ClassificationSpec(data), ClassifierArch(), EvalSection())
    task.fit_to_data(load_splits(data, seed=0, check=task.check_split))
    return task


def _jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.mark.parametrize("records, message", [
    ([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"text": 3, "label": "x"}],
     r"t.jsonl: column 'text', row 3 \(data rows counted from 1\) holds a number \(3\), not text"),
    ([{"text": "a", "label": "x"}, {"text": None, "label": "y"}], r"column 'text', row 2 .* is null"),
    ([{"text": [1], "label": "x"}, {"text": [2], "label": "y"}], r"column 'text', row 1 .* holds a list"),
    ([{"text": "a", "label": "x"}, {"text": "b", "label": True}, {"text": "c", "label": [1]}],
     r"column 'label', row 3 .* holds a list, not a label"),
    ([{"text": "a", "label": 1}, {"text": "b", "label": 2.5}], r"column 'label', row 2 .* has label 2.5"),
    ([{"text": "a", "label": 0}, {"text": "b", "label": None}, {"text": "c", "label": 1}],
     r"column 'label', row 2 .* has an empty label"),
    ([{"text": "a", "label": 0}, {"text": "b", "label": 0}], r"single label 0 in every row"),
    ([{"text": "a", "label": "pos"}, {"text": "b", "label": "pos"}], r"single label 'pos' in every row"),
])
def test_bad_rows_are_named_with_their_number(tmp_path, records, message):
    with pytest.raises(DataError, match=message):
        _checked(tmp_path, _jsonl(*records))


def test_rows_are_numbered_in_the_file_not_after_shuffling(tmp_path):
    records = [{"text": f"t{i}", "label": i % 2} for i in range(40)] + [{"text": None, "label": 0}]
    with pytest.raises(DataError, match=r"row 41 "):
        _checked(tmp_path, _jsonl(*records), max_train_samples=5, validation_fraction=0.5)


def test_documented_acceptances(tmp_path):
    """Empty and whitespace-only texts are text; 1.0 is class id 1; booleans are two classes;
    CSV cells reading NA or null (or empty) stay text rather than turning into nulls."""
    task = _checked(tmp_path, _jsonl({"text": "", "label": 0.0}, {"text": "  ", "label": 1.0}))
    assert task.spec.label_names == ["0", "1"]
    assert _checked(tmp_path, _jsonl({"text": "a", "label": True}, {"text": "b", "label": False})).spec.label_names == ["False", "True"]
    csv = _checked(tmp_path, "text,label\nNA,pos\n,neg\nnull,pos\n", name="t.csv")
    assert csv.spec.label_names == ["neg", "pos"]
    splits = load_splits(csv.spec.data, seed=0)
    assert splits["train"]["text"] == ["NA", "", "null"]


def test_data_path_with_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "t.jsonl").write_text(_jsonl({"text": "a", "label": "x"}, {"text": "b", "label": "y"}))
    splits = load_splits(DataSection(files={"train": "~/t.jsonl", "validation": "~/t.jsonl"}), seed=0)
    assert splits["train"]["text"] == ["a", "b"]


def test_generation_columns_allow_lists_of_strings_only_where_they_mean_something(tmp_path):
    from finetune.tasks.specs.summarization import SummarizationSpec as summarize
    from finetune.tasks.specs.translation import TranslationSpec as translate

    _checked(tmp_path, _jsonl({"text": ["one.", "two."], "s": ["a", "b"]}, {"text": "x", "s": "c"}),
             task=summarize, summary_column="s")
    with pytest.raises(DataError, match=r"column 's', row 2 .* holds a number \(5\)"):
        _checked(tmp_path, _jsonl({"text": "a", "s": "b"}, {"text": "c", "s": 5}), task=summarize, summary_column="s")
    with pytest.raises(DataError, match=r"column 'text', row 1 .* holds a list"):
        _checked(tmp_path, _jsonl({"text": ["a"], "de": "b"}), task=translate, target_column="de")


def test_undecodable_line_is_found_across_read_chunks(tmp_path, monkeypatch):
    from finetune.data import file_checks

    monkeypatch.setattr(file_checks, "CHUNK", 7)  # splits 'é' (2 bytes) and lines across reads
    path = tmp_path / "t.csv"
    path.write_bytes("text\ncafé au lait\nthé\n".encode() + b"bad \xe9 byte\n")
    assert file_checks.first_undecodable_line(path) == 4
    path.write_bytes("text\ncafé au lait\nthé\n".encode())
    assert file_checks.first_undecodable_line(path) is None
    path.write_bytes(b"text\nends mid-character \xc3")
    assert file_checks.first_undecodable_line(path) == 2


# ----------------------------------------------------------------------------- length limits


def test_position_limits_of_each_family():
    from transformers import BertConfig, GPT2Config, RobertaConfig, T5Config

    from finetune.data.length_limits import position_limit

    assert position_limit(BertConfig(max_position_embeddings=512)) == (512, "max_position_embeddings")
    assert position_limit(GPT2Config(n_positions=1024)) == (1024, "n_positions")
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == (512, "max_position_embeddings")
    assert position_limit(T5Config(n_positions=512)) is None  # relative positions


def test_causal_lengths_count_prompt_and_target_together():
    from transformers import GPT2Config

    from finetune.configuration.config import RunConfig
    from finetune.errors import ConfigError
    from finetune.data.length_limits import check_lengths

    def cfg(source, target):
        return RunConfig.model_validate({
            "task": "translation", "model": {"name_or_path": "m"},
            "data": {"dataset": "d", "target_column": "de", "max_source_length": source, "max_target_length": target},
        })

    model = GPT2Config(n_positions=256)
    check_lengths(cfg(128, 128), "causal", model)
    with pytest.raises(ConfigError, match=r"data.max_source_length \+ data.max_target_length = 257: model 'm' takes at most 256"):
        check_lengths(cfg(129, 128), "causal", model)
    check_lengths(cfg(129, 128), "seq2seq", model)  # encoder and decoder each have their own


def test_a_label_respelled_against_the_models_labels_is_named_with_its_row(tmp_path, tiny_bert):
    """`finetune eval --split` on a file whose labels are the model's, written another way."""
    from transformers import AutoConfig, AutoTokenizer

    from finetune.data.splits import load_split

    dev = _write(tmp_path, "csv", [("meh", "negative"), ("great", "Positive ")], name="dev")
    data = DataSection(files={"train": _write(tmp_path, "csv"), "test": dev})
    task = Task(ClassificationSpec(data), ClassifierArch(), EvalSection())
    task.restore(AutoConfig.from_pretrained(tiny_bert, id2label={0: "negative", 1: "positive"}))
    raw, _ = load_split(data, "test", check=task.check_split)
    with pytest.raises(DataError, match=r"dev.csv: column 'label', row 2 .*: label 'Positive ' differs from "
                                        r"'positive' in the model's labels only by case or surrounding whitespace"):
        task.encode(raw, "test", AutoTokenizer.from_pretrained(tiny_bert))
