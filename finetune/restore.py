"""Rebuild a trained model from a run directory: a full model, or base model + PEFT adapter."""

from __future__ import annotations

from pathlib import Path

from finetune import manifest
from finetune.config import RunConfig
from finetune.errors import RunDirError

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter(model_dir: Path) -> bool:
    return (model_dir / ADAPTER_CONFIG).is_file()


def save_beside(model, tokenizer, task, directory: Path) -> None:
    """What `load_trained_model` needs next to the weights: the model config (for an adapter,
    the base model's, which carries the label names), the tokenizer, and the task's own files
    (a generation config)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    task.save_alongside(model, tokenizer, directory)


def saved_config(model_dir: Path):
    """The config.json `finetune train` saves in both kinds of directory (an adapter's is the base
    model's, saved beside it): loaded once, it picks the task's architecture, restores its label
    set, and builds a full model."""
    from transformers import AutoConfig

    if not (model_dir / "config.json").is_file():
        raise RunDirError(f"'{model_dir}': has no config.json; the run is incomplete, train it again")
    return AutoConfig.from_pretrained(model_dir)


def load_trained_model(cfg: RunConfig, task, model_dir: Path, config):
    """Load what `finetune train` saved; `config` is its saved_config."""
    from finetune.models import load_model

    task.restore(config)
    if is_adapter(model_dir):
        from peft import PeftModel

        base = load_model(cfg.model, task.auto_class, **task.model_kwargs())
        return PeftModel.from_pretrained(base, model_dir)
    saved = cfg.model.model_copy(
        update={"name_or_path": str(model_dir), "init": "pretrained", "gguf_file": None,
                "config_overrides": {}, "revision": None}
    )
    return load_model(saved, task.auto_class, config=config)


def load_run_model(run: Path, cfg: RunConfig, checkpoint: str | None = None):
    """(task, tokenizer, model) of a finished run, ready for inference on the CPU or one GPU."""
    from finetune import run_dir as rd
    from finetune.models import load_tokenizer
    from finetune.tasks import get_task

    source = rd.model_dir(run, checkpoint)
    if source.parent.name == rd.CHECKPOINTS_DIR and (problem := manifest.problem(source)):
        raise RunDirError(f"checkpoint '{source}' is damaged: {problem}; choose another checkpoint")
    config = saved_config(source)
    task = get_task(cfg, config)
    tokenizer = load_tokenizer(cfg.model.model_copy(update={"name_or_path": str(source), "gguf_file": None}))
    task.prepare_tokenizer(tokenizer)
    model = load_trained_model(cfg, task, source, config)
    model.eval()
    return task, tokenizer, model
