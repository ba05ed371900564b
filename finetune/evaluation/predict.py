"""`finetune predict`: answers of a trained run for texts given on the command line or in a
JSON-lines file; the task decides what an answer is."""

from __future__ import annotations

import json
from pathlib import Path

from finetune.configuration.config import RunConfig
from finetune.errors import DataError


def read_texts(path: Path, field: str = "text") -> list[str]:
    if not path.is_file():
        raise DataError(f"--file '{path}': not found")
    texts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"--file '{path}' line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get(field), str):
            raise DataError(f"--file '{path}' line {number}: needs a string field '{field}'")
        texts.append(row[field])
    if not texts:
        raise DataError(f"--file '{path}': holds no lines; give one JSON object per line")
    return texts


def predict_run(run: Path, cfg: RunConfig, texts: list[str], checkpoint: str | None = None) -> list[dict]:
    import torch

    from finetune.evaluation.inference import predict
    from finetune.storage.saved_model import load_run_model

    task, tokenizer, model = load_run_model(run, cfg, checkpoint)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return predict(task, model, tokenizer, texts)
