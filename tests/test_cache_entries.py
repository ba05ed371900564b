"""The data cache follows the data files' content, and a damaged or swapped entry is rebuilt
with one warning line, never read as it is and never a traceback on every later run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli, sentiment_yaml, write_config

from finetune.configuration.config import DataSection, EvalSection
from finetune.data.splits import cache_root, load_splits
from finetune.tasks.architectures.classifier import ClassifierArch
from finetune.tasks.specs.classification import ClassificationSpec
from finetune.tasks.task import Task


def _rows(labels: list[str]) -> str:
    return "".join(json.dumps({"text": f"text number {i:03d}", "label": lab}) + "\n" for i, lab in enumerate(labels))


def _rewrite_keeping_size_and_mtime(path: Path, text: str) -> None:
    """What an editor, a sync tool or `cp -p` can do: new content, same size, old times."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _prepare(data: DataSection, tokenizer):
    """What `train` does with the data: read, check, fit labels, tokenize both splits."""
    task = Task(ClassificationSpec(data), ClassifierArch(), EvalSection())
    splits = load_splits(data, seed=0, check=task.check_split)
    task.fit_to_data(splits)
    return splits, {name: task.encode(splits[name], name, tokenizer) for name in splits}


@pytest.fixture
def setup(tmp_path, tiny_bert, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("FINETUNE_CACHE", str(tmp_path / "cache"))
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train.write_text(_rows(["good", "bad"] * 10))
    dev.write_text(_rows(["good"] * 4 + ["bad"] * 4))
    data = DataSection(files={"train": str(train), "validation": str(dev)}, max_length=16)
    return data, AutoTokenizer.from_pretrained(tiny_bert), dev


def test_a_file_rewritten_with_its_old_mtime_is_read_anew(setup):
    data, tokenizer, dev = setup
    splits, encoded = _prepare(data, tokenizer)
    assert splits["validation"]["label"] == ["good"] * 4 + ["bad"] * 4
    _rewrite_keeping_size_and_mtime(dev, _rows(["bad"] * 4 + ["good"] * 4))
    splits, again = _prepare(data, tokenizer)
    assert splits["validation"]["label"] == ["bad"] * 4 + ["good"] * 4
    assert again["validation"]["labels"] == [0] * 4 + [1] * 4  # bad=0, good=1 (sorted names)
    assert again["train"]["input_ids"] == encoded["train"]["input_ids"]


def _entries(data, pattern):
    return sorted(p for p in cache_root(data).rglob(pattern) if p.is_file())


@pytest.mark.parametrize("damage", ["truncate", "swap-splits", "garbage", "record-lost"])
def test_a_damaged_tokenized_entry_is_rebuilt_with_one_warning(setup, capsys, damage):
    data, tokenizer, _ = setup
    _, first = _prepare(data, tokenizer)
    expected = {name: ds[:] for name, ds in first.items()}
    train_entry, dev_entry = (Path(first[name].cache_files[0]["filename"]) for name in ("train", "validation"))
    if damage == "truncate":
        train_entry.write_bytes(train_entry.read_bytes()[:200])
    elif damage == "swap-splits":  # each split's rows under the other's name
        a, b = train_entry.read_bytes(), dev_entry.read_bytes()
        train_entry.write_bytes(b)
        dev_entry.write_bytes(a)
    elif damage == "garbage":
        dev_entry.write_bytes(b"\0" * dev_entry.stat().st_size)
    else:  # an entry without its record is not trusted either (a write cut short)
        Path(str(dev_entry) + ".record.json").unlink()
    capsys.readouterr()
    _, again = _prepare(data, tokenizer)
    assert {name: ds[:] for name, ds in again.items()} == expected
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "Traceback" not in err
    assert len(warnings) == (0 if damage == "record-lost" else 1), err
    if warnings:
        assert "data cache entry" in warnings[0] and "rebuilding it" in warnings[0]
    # Repaired for good: the next reading is quiet.
    _prepare(data, tokenizer)
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "swap-splits"])
def test_a_damaged_parsed_file_entry_is_rebuilt_with_one_warning(setup, capsys, damage):
    data, tokenizer, _ = setup
    splits, _ = _prepare(data, tokenizer)
    expected = {name: ds[:] for name, ds in splits.items()}
    parsed = {p.name: p for p in _entries(data, "*.arrow") if not p.name.startswith("tokenized-")}
    train, dev = parsed["json-train.arrow"], parsed["json-validation.arrow"]
    if damage == "truncate":
        train.write_bytes(train.read_bytes()[:100])
    else:
        a, b = train.read_bytes(), dev.read_bytes()
        train.write_bytes(b)
        dev.write_bytes(a)
    capsys.readouterr()
    splits, _ = _prepare(data, tokenizer)
    assert {name: ds[:] for name, ds in splits.items()} == expected
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("warning:")]) == 1, err


def test_cli_evaluates_the_rewritten_rows_and_survives_a_truncated_cache(tmp_path, tiny_bert, sentiment_files):
    """Through the real CLI: train and eval, damage every cache file: `eval` rebuilds the cache
    with one warning line; rewrite the validation file (same size, old mtime): `eval` scores the new rows."""
    dev = tmp_path / "dev.jsonl"
    dev.write_text(_rows(["positive"] * 6 + ["negative"] * 6))
    files = {"train": sentiment_files["train"], "validation": str(dev)}
    cache = tmp_path / "cache"
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, files) + f"""
training:
  output_dir: {tmp_path / 'run'}
  max_steps: 2
  batch_size: 8
""")
    env = {"FINETUNE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    assert run_cli("train", "--config", str(cfg), env=env).returncode == 0
    run = tmp_path / "run"

    def evaluated_labels():
        result = run_cli("eval", str(run), "--split", "validation", env=env)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        preds = [json.loads(line) for line in (run / "predictions_validation.jsonl").read_text().splitlines()]
        return [p["label"] for p in preds], [line for line in result.stderr.splitlines() if line.startswith("warning:")]

    assert evaluated_labels() == (["positive"] * 6 + ["negative"] * 6, [])
    for entry in cache.rglob("*.arrow"):
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    labels, warnings = evaluated_labels()
    assert labels == ["positive"] * 6 + ["negative"] * 6
    assert len(warnings) == 1 and "data cache entry" in warnings[0]

    _rewrite_keeping_size_and_mtime(dev, _rows(["negative"] * 6 + ["positive"] * 6))
    labels, warnings = evaluated_labels()
    assert labels == ["negative"] * 6 + ["positive"] * 6 and not warnings
