"""A file written by finetune is whole or absent: a failed write leaves the old file and no debris."""

import pytest

from finetune.storage.atomic_write import write_text_atomic


def test_replaces_the_file_whole(tmp_path):
    target = tmp_path / "answers.jsonl"
    target.write_text("old\n", encoding="utf-8")
    write_text_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["answers.jsonl"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    target = tmp_path / "trackers.json"
    target.write_text('{"mlflow": "abc"}', encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):  # fails after the temporary file is opened, as a full disk does
        write_text_atomic(target, "half" + "\ud800")
    assert target.read_text(encoding="utf-8") == '{"mlflow": "abc"}'
    assert [p.name for p in tmp_path.iterdir()] == ["trackers.json"]
