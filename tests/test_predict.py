"""`finetune predict`: answers for texts on the command line or in a JSON-lines file, the same
as the evaluation's predictions."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli


def test_predict_texts_and_file(lora_run, tmp_path):
    texts = ["I love it, works perfectly.", "Broke after a day, awful."]
    inline = run_cli("predict", str(lora_run), *texts)
    assert inline.returncode == 0, inline.stderr
    answers = [json.loads(line) for line in inline.stdout.splitlines()]
    assert [a["text"] for a in answers] == texts
    for answer in answers:
        assert set(answer["probabilities"]) == {"negative", "positive"}
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert answer["label"] == max(answer["probabilities"], key=answer["probabilities"].get)

    # The same texts from a file give the same answers, and agree with `finetune eval`'s view.
    infile = tmp_path / "in.jsonl"
    infile.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    from_file = run_cli("predict", str(lora_run), "--file", str(infile))
    assert from_file.returncode == 0, from_file.stderr
    assert [json.loads(line) for line in from_file.stdout.splitlines()] == answers


def test_predict_matches_the_evaluation_predictions(lora_run, tmp_path):
    records = [json.loads(line) for line in (lora_run / "predictions_validation.jsonl").read_text().splitlines()][:5]
    result = run_cli("predict", str(lora_run), *[r["text"] for r in records])
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["label"] for a in answers] == [r["predicted"] for r in records]
    assert [a["score"] for a in answers] == pytest.approx([r["probability"] for r in records], abs=1e-4)


@pytest.mark.parametrize("content, message", [
    ('{"txt": "x"}\n', "needs a string field 'text'"),
    ('{"text": "fine"}\nthen plain text\n', "line 2: not JSON"),
    ("", "holds no lines"),
])
def test_predict_bad_file_is_one_line_error(lora_run, tmp_path, content, message):
    infile = tmp_path / "in.jsonl"
    infile.write_text(content)
    result = run_cli("predict", str(lora_run), "--file", str(infile))
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_predict_reads_plain_lines_from_stdin_and_json_fields(lora_run, tmp_path):
    texts = ["I love it, works perfectly.", "Broke after a day, awful."]
    inline = run_cli("predict", str(lora_run), *texts)
    expected = [json.loads(line) for line in inline.stdout.splitlines()]
    piped = _run_with_stdin(["predict", str(lora_run), "-"], "\n".join(texts) + "\n\n")
    assert piped.returncode == 0, piped.stderr
    assert [json.loads(line) for line in piped.stdout.splitlines()] == expected
    assert all(set(a) == {"text", "label", "score", "probabilities"} for a in expected)

    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text("".join(json.dumps({"review": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "answers.jsonl"
    result = run_cli("predict", str(lora_run), "--file", str(reviews), "--field", "review", "--output", str(out))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == expected

    again = run_cli("predict", str(lora_run), "--file", str(reviews), "--field", "review", "--output", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == expected  # left as it was


def _run_with_stdin(args, text):
    import os
    import subprocess
    import sys

    from conftest import QUIET_ENV, ROOT

    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "finetune", *args], input=text, capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
