"""`finetune chat` on a tiny T5 summarization run, as a real subprocess fed through a pipe: one
answer per non-empty line, the same text evaluation generated, no prompt, `exit` ends it; on a
terminal a prompt, and Ctrl-D (end of input) ends it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from conftest import QUIET_ENV, ROOT, main_in_process, run_cli, write_config


def _chat(run, stdin: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **QUIET_ENV, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "finetune", "chat", str(run)], input=stdin, cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_lines_get_the_answers_predict_gives_and_exit_ends_the_chat(tmp_path, capsys, monkeypatch):
    from tiny_models import build_tiny_generator, corpus

    texts = [t for t in corpus() if len(t.split()) >= 5][:20]
    data = {}
    for split, rows in (("train", texts[:16]), ("validation", texts[16:])):
        data[split] = tmp_path / f"{split}.jsonl"
        data[split].write_text("".join(json.dumps({"document": t, "summary": " ".join(t.split()[:3])}) + "\n"
                                       for t in rows))
    cfg = write_config(tmp_path / "run.yaml", f"""
task: summarization
model: {{name_or_path: {build_tiny_generator("t5", tmp_path / "t5")}}}
data: {{files: {{train: {data['train']}, validation: {data['validation']}}}, text_column: document,
        summary_column: summary, max_source_length: 32, max_target_length: 8}}
training: {{output_dir: {tmp_path / 'run'}, max_steps: 2, batch_size: 8}}
eval: {{generation: {{max_new_tokens: 6}}}}
""")
    trained = run_cli("train", "--config", str(cfg), env={"OMP_NUM_THREADS": "1"})
    assert trained.returncode == 0, trained.stderr[-3000:]
    evaluated = {r["source"]: r["generated"] for r in map(json.loads, (
        tmp_path / "run" / "predictions_validation.jsonl").read_text().splitlines())}
    first, second, never = texts[16:19]

    result = _chat(tmp_path / "run", f"{first}\n\n{second}\nexit\n{never}\n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [evaluated[first], evaluated[second]]

    monkeypatch.setattr(sys, "stdin", _Terminal(f"{first}\n"))  # then Ctrl-D: end of input
    code, out, err = main_in_process(["chat", str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 0, err
    assert out == f"> {evaluated[first]}\n> \n"


def test_chat_gives_the_model_each_line_as_predict_file_does(tmp_path, monkeypatch):
    """Spaces are part of a text (a BPE tokenizer reads ' word' and 'word' apart): chat keeps
    them, as `predict --file` and evaluation do; only the line ending goes."""
    from finetune.commands.chat import _lines
    from finetune.evaluation.predict import read_texts

    typed = "  indented source\nsource with a trailing space \r\n\n   \nplain\n"
    (tmp_path / "texts.txt").write_text(typed, newline="")
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    assert list(_lines(False)) == read_texts(str(tmp_path / "texts.txt")) == [
        "  indented source", "source with a trailing space ", "plain"]
