"""`finetune merge`: fold a LoRA adapter into its base model and save a plain transformers model
(with tokenizer) that loads without peft."""

from __future__ import annotations

from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.configuration.config import RunConfig
from finetune.errors import RunDirError


def merge_run(run: Path, cfg: RunConfig, out: Path, checkpoint: str | None = None) -> Path:
    from finetune.storage.checkpoint import atomic_dir
    from finetune.storage.saved_model import is_adapter, load_run_model

    source = rd.model_dir(run, checkpoint)
    if not is_adapter(source):
        raise RunDirError(
            f"'{run}': is not a LoRA run ({source} holds a full model, not an adapter); "
            "its model directory loads with from_pretrained as it is"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(f"output '{out}': already exists and is not empty; choose a new directory")
    _, tokenizer, model = load_run_model(run, cfg, checkpoint)
    merged = model.merge_and_unload()  # W + (alpha / r) * B @ A, the LoRA layers removed
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out
