"""`finetune merge`: fold a LoRA adapter into its base model and save a plain transformers model
(with tokenizer, decoding settings and model card) that loads without peft; by default in the
run's merged/, where `finetune push --merged` finds it."""

from __future__ import annotations

from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.configuration.config import RunConfig
from finetune.errors import RunDirError


def merge_run(run: Path, cfg: RunConfig, out: Path | None = None, checkpoint: str | None = None) -> Path:
    from finetune.storage.checkpoint import atomic_dir
    from finetune.saved.saved_model import is_adapter, load_run_model, verified_model_dir
    from finetune.storage.saved_model_check import holds_adapter, seal
    from finetune.saved.model_card import label_names, merged_card

    out = out or run / rd.MERGED_DIR
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(f"output '{out}': already exists and is not empty; choose a new directory (OUT_DIR)")
    source = rd.model_dir(run, checkpoint)
    if holds_adapter(source):  # then a lost adapter_config.json is damage, not a full model
        verified_model_dir(run, checkpoint)
    if not is_adapter(source):
        raise RunDirError(
            f"'{run}': is not a LoRA run ({source} holds a full model, not an adapter); "
            "its model directory loads with from_pretrained as it is"
        )
    task, tokenizer, model = load_run_model(run, cfg, checkpoint)
    merged = model.merge_and_unload()  # W + (alpha / r) * B @ A, the LoRA layers removed
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        task.save_alongside(merged, tokenizer, tmp)
        seal(tmp, out.name)
        card = merged_card(run, cfg, task, source, out, label_names(merged.config, task))
        (tmp / rd.CARD_FILE).write_text(card, encoding="utf-8")
    return out
