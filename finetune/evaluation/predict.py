"""`finetune predict`: answers of a trained run for texts given on the command line, in a file or
on standard input (plain text, one per line, or JSON lines); the task decides what an answer is."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from finetune.configuration.config import RunConfig
from finetune.data.file_checks import MAX_LINE_BYTES, scan
from finetune.errors import DataError, RunDirError
from finetune.storage.atomic_write import write_text_atomic


def read_texts(source: str, field: str = "text") -> list[str]:
    """`source`: a file, or `-` for standard input. Lines are plain texts, unless the first one is
    a JSON object: then every line is one, and `field` names its text."""
    name = "standard input" if source == "-" else f"--file '{source}'"
    if source == "-":
        content = sys.stdin.read()
    elif Path(source).is_file():
        _, too_long = scan(Path(source))  # a line past the limit would be held whole, several times
        if too_long is not None:
            raise DataError(f"{name} line {too_long[0]}: longer than {MAX_LINE_BYTES >> 20} MB, too much "
                            "to read in memory; shorten it (a text is cut to the model's token limit anyway)")
        content = Path(source).read_text(encoding="utf-8")
    else:
        raise DataError(f"{name}: not found")
    lines = [(number, line) for number, line in enumerate(content.splitlines(), start=1) if line.strip()]
    if not lines:
        raise DataError(f"{name}: holds no lines; give one text (or JSON object) per line")
    if not lines[0][1].lstrip().startswith("{"):
        return [line for _, line in lines]
    texts = []
    for number, line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{name} line {number}: not JSON ({exc.msg}), though line {lines[0][0]} is; "
                            "give JSON lines throughout, or plain text lines") from exc
        if not isinstance(row, dict) or not isinstance(row.get(field), str):
            raise DataError(f"{name} line {number}: needs a string field '{field}' (set it with --field)")
        texts.append(row[field])
    return texts


def check_output(path: Path | None) -> None:
    """Answers go to a new file: one that exists may be the user's, and is never overwritten."""
    if path is not None and path.exists():
        raise RunDirError(f"--output '{path}': already exists; choose a new file name")


def write_answers(answers: list[dict], path: Path | None) -> None:
    lines = "".join(json.dumps(answer, ensure_ascii=False) + "\n" for answer in answers)
    if path is None:
        sys.stdout.write(lines)
        return
    write_text_atomic(path, lines)


def predict_run(run: Path, cfg: RunConfig, texts: list[str], checkpoint: str | None = None) -> list[dict]:
    return run_predictor(run, cfg, checkpoint)(texts)


def run_predictor(run: Path, cfg: RunConfig, checkpoint: str | None = None) -> Callable[[list[str]], list[dict]]:
    """The run's model, loaded once (`finetune chat` asks it line after line)."""
    import torch

    from finetune.evaluation.inference import predict
    from finetune.saved.saved_model import load_run_model

    task, tokenizer, model = load_run_model(run, cfg, checkpoint)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return lambda texts: predict(task, model, tokenizer, texts)
