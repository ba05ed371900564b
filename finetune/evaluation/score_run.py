"""`finetune eval`: reload a finished run and score it on a split."""

from __future__ import annotations

import json
from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.configuration.config import RunConfig


def evaluate_run(run: Path, cfg: RunConfig, split: str, checkpoint: str | None = None) -> dict:
    from finetune.training.assemble import make_accelerator, make_eval_loader
    from finetune.data.splits import load_split
    from finetune.evaluation.inference import EvalLoaders, evaluate, make_generation_loader
    from finetune.data.length_limits import check_lengths
    from finetune.storage.saved_model import load_run_model
    from finetune.storage.run_lock import RunLock

    # eval writes into the run directory too: like a second `train`, it is refused (naming the
    # PID) while a training process holds the run, rather than racing it for eval_*.json.
    with RunLock() as lock:
        lock.acquire(run)
        accelerator = make_accelerator(cfg)
        task, tokenizer, model = load_run_model(run, cfg, checkpoint)
        check_lengths(cfg, task.kind, model.config)  # overrides may have raised a length
        raw = load_split(cfg.data, split, check=task.check_split)
        with accelerator.main_process_first():
            encoded = task.encode(raw, split, tokenizer)
        loaders = EvalLoaders(
            make_eval_loader(cfg, task, tokenizer, encoded, model.config),
            make_generation_loader(task, tokenizer, raw, model.config),
        ).prepared(accelerator)
        model = accelerator.prepare(model)
        metrics, records = evaluate(task, model, loaders, raw, accelerator, tokenizer)
        if accelerator.is_main_process:
            write_results(run, split, metrics, records)
            task.write_figures(run, split, records)
    return metrics


def write_results(run: Path, split: str, metrics: dict, records: list[dict]) -> None:
    (run / rd.eval_file(split)).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    with open(run / rd.predictions_file(split), "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
