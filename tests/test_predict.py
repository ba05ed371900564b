"""`finetune predict`: answers for texts on the command line or in a JSON-lines file, the same
as the evaluation's predictions."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, write_config


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


def test_predict_answers_a_generation_run_as_its_evaluation_did(tmp_path):
    """A decoder-only run with data.source_prefix and a prompt template: predict, given the
    sources of predictions_validation.jsonl (which hold the prefix) or the data's texts (which
    do not), builds the very prompts evaluation built and gives its answers, row for row."""
    from tiny_models import build_tiny_generator, corpus

    from finetune.commands.run_arguments import load_run
    from finetune.saved.saved_model import load_run_model

    texts = [t for t in corpus() if len(t.split()) >= 5][:20]
    files = {}
    for split, rows in (("train", texts[:14]), ("validation", texts[14:])):
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps({"en": t, "de": " ".join(reversed(t.split()))}) + "\n"
                                        for t in rows))
    cfg = write_config(tmp_path / "run.yaml", f"""
task: translation
model: {{name_or_path: {build_tiny_generator("gpt2", tmp_path / "gpt2")}}}
data: {{files: {{train: {files['train']}, validation: {files['validation']}}}, text_column: en, target_column: de,
        max_source_length: 24, max_target_length: 12, source_prefix: "reverse: ",
        prompt_template: "Words: {{source}}\\nReversed ({{target_lang}}):"}}
training: {{output_dir: {tmp_path / 'run'}, max_steps: 2, batch_size: 8, lr: 1.0e-3}}
eval: {{batch_size: 4, generation: {{max_new_tokens: 6}}}}
""")
    trained = run_cli("train", "--config", str(cfg), env={"OMP_NUM_THREADS": "1"})
    assert trained.returncode == 0, trained.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "predictions_validation.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == ["reverse: " + t for t in texts[14:]]

    result = run_cli("predict", str(tmp_path / "run"), *[r["source"] for r in records], env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(a["source"], a["generated"]) for a in answers] == [(r["source"], r["generated"]) for r in records]

    # What the model is given (a tiny model may answer alike whatever it reads): the same prompt ids.
    run, run_cfg = load_run(tmp_path / "run", [])
    task, tokenizer, _ = load_run_model(run, run_cfg)
    from datasets import Dataset

    raw = Dataset.from_list([{"en": t, "de": ""} for t in texts[14:]])
    evaluated = task.prompt_rows(task.sources(raw), tokenizer)
    for given in ([r["source"] for r in records], texts[14:]):
        assert task.prompt_rows(task.user_inputs(given), tokenizer) == evaluated
