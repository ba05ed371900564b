"""A huge row (tens of MB of text) trains, evaluates and is predicted on with memory bounded by
the token limit: the tokenizer only ever sees the text cut to `max_length` × CHARS_PER_TOKEN
characters. A line too long to read at all is refused in one line."""

from __future__ import annotations

import json

import pytest
from conftest import main_in_process, sentiment_yaml, write_config

from finetune.data import file_checks
from finetune.data.text_cut import char_limit, cut

HUGE = "a rather long review " * (30 * 2**20 // 21)  # 30 MB in one text


@pytest.fixture
def tokenized_lengths(monkeypatch):
    """The length of every text handed to any tokenizer, through the real __call__."""
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    lengths: list[int] = []
    original = PreTrainedTokenizerBase.__call__

    def spy(self, text=None, text_pair=None, text_target=None, *args, **kwargs):
        for value in (text, text_pair, text_target):
            lengths.extend(len(t) for t in ([value] if isinstance(value, str) else value or []) if isinstance(t, str))
        return original(self, text, text_pair, text_target, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", spy)
    return lengths


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_a_30_mb_row_trains_and_is_predicted_on_cut(tmp_path, tiny_bert, capsys, monkeypatch, tokenized_lengths):
    rows = [{"text": t, "label": lab} for t, lab in [("good", "positive"), ("bad", "negative")] * 4]
    files = {"train": _jsonl(tmp_path / "train.jsonl", rows + [{"text": HUGE, "label": "positive"}]),
             "validation": _jsonl(tmp_path / "dev.jsonl", rows[:3] + [{"text": HUGE, "label": "negative"}])}
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, files) + f"""
training:
  output_dir: {tmp_path / 'run'}
  max_steps: 2
  batch_size: 4
""")
    code, _, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 0, err
    assert max(tokenized_lengths) == char_limit(32)  # the huge rows were tokenized, cut

    tokenized_lengths.clear()
    infile = tmp_path / "in.txt"
    infile.write_text("fine\n" + HUGE + "\n")
    code, out, err = main_in_process(["predict", str(tmp_path / "run"), "--file", str(infile)], capsys, monkeypatch)
    assert code == 0, err
    assert len(out.splitlines()) == 2
    assert max(tokenized_lengths) == char_limit(32)


def test_a_huge_row_of_a_generation_task_is_cut_before_tokenizing(tmp_path, capsys, monkeypatch, tokenized_lengths):
    from tiny_models import build_tiny_generator

    model = build_tiny_generator("gpt2", tmp_path / "gpt2")
    rows = [{"src": f"text {i}", "tgt": f"target {i}"} for i in range(6)]
    train = _jsonl(tmp_path / "train.jsonl", rows + [{"src": HUGE, "tgt": HUGE}])
    dev = _jsonl(tmp_path / "dev.jsonl", rows[:2] + [{"src": HUGE, "tgt": "a short reference"}])
    cfg = write_config(tmp_path / "run.yaml", f"""task: translation
model:
  name_or_path: {model}
data:
  files: {{train: {train}, validation: {dev}}}
  text_column: src
  target_column: tgt
  max_source_length: 16
  max_target_length: 8
training:
  output_dir: {tmp_path / 'run'}
  max_steps: 1
  batch_size: 4
eval:
  generation: {{max_new_tokens: 2}}
""")
    code, _, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 0, err
    assert max(tokenized_lengths) == char_limit(16)  # the source (prompts, eval included); targets less


def test_the_cut_keeps_the_tokens_the_whole_text_gives(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    text = "an ordinary review, neither short nor odd; " * 500
    whole = tokenizer(text, truncation=True, max_length=32)["input_ids"]
    assert len(text) > char_limit(32)
    assert tokenizer(cut([text], 32), truncation=True, max_length=32)["input_ids"] == [whole]


@pytest.mark.parametrize("name", ["t.jsonl", "t.json", "t.csv"])
def test_a_line_too_long_to_read_is_refused_in_one_line(tmp_path, name, monkeypatch):
    from finetune.configuration.config import DataSection
    from finetune.data.splits import load_splits
    from finetune.errors import DataError

    monkeypatch.setattr(file_checks, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(file_checks, "CHUNK", 300)  # the line spans several reads
    long = "x" * 1500
    path = tmp_path / name
    if name == "t.csv":
        path.write_text(f"text,label\na,b\n{long},c\n")
        line = 3
    elif name == "t.json":  # a whole file on one line
        path.write_text(json.dumps([{"text": long, "label": "a"}, {"text": "b", "label": "b"}]))
        line = 1
    else:
        path.write_text(json.dumps({"text": "a", "label": "a"}) + "\n" + json.dumps({"text": long, "label": "b"}) + "\n")
        line = 2
    with pytest.raises(DataError, match=rf"data.files.train: '.*{name}' line {line} is longer than 1000 bytes") as caught:
        load_splits(DataSection(files={"train": str(path)}), seed=0)
    assert ("JSON Lines" in str(caught.value)) == (name == "t.json")
