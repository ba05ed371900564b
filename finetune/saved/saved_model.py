"""A saved model directory (the final `model/`, `best/`, the model part of a checkpoint): what
goes in it so that it reloads on its own, and loading it back as a full model or base model +
PEFT adapter, only once saved_model_check.py found it whole. Saving a training run's model
(every process, NaN weights refused) is training/save_model.py's."""

from __future__ import annotations

from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.storage import saved_model_check
from finetune.configuration.config import RunConfig
from finetune.errors import RunDirError


def write(model, tokenizer, task, directory: Path, state_dict: dict | None = None) -> None:
    """The model's files in `directory`: the weights (a PEFT model writes only its adapter), the
    model config (for an adapter, the base model's, which carries the label names, under its own
    name), the tokenizer and the task's own files (a generation config). `state_dict`: the full
    weights when they were gathered from several processes."""
    model.save_pretrained(directory, state_dict=state_dict)
    if hasattr(model, "get_base_model"):
        model.get_base_model().config.to_json_file(directory / rd.ADAPTER_BASE_CONFIG_FILE)
    else:
        model.config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    task.save_alongside(model, tokenizer, directory)
    saved_model_check.write_record(directory)  # the manifest that covers it is the caller's to write


def is_adapter(model_dir: Path) -> bool:
    return (model_dir / rd.ADAPTER_CONFIG_FILE).is_file()


def saved_config_file(model_dir: Path) -> Path:
    """The model config saved beside the weights: an adapter's is its base model's, in
    config.json when an older finetune wrote it."""
    for name in (rd.MODEL_CONFIG_FILE, rd.ADAPTER_BASE_CONFIG_FILE):
        if (model_dir / name).is_file():
            return model_dir / name
    raise RunDirError(f"'{model_dir}': has no {rd.MODEL_CONFIG_FILE}; the run is incomplete, train it again")


def saved_config(model_dir: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(saved_config_file(model_dir))


def load(cfg: RunConfig, task, model_dir: Path, model_config=None):
    """The model `write` saved in `model_dir`. The task first restores its label set from the
    saved model config (`model_config`, if the caller has read it already)."""
    from finetune.model.load import load_model

    if model_config is None:
        model_config = saved_config(model_dir)
    task.restore(model_config)
    if is_adapter(model_dir):
        from peft import PeftModel

        from finetune.storage.safetensors_only import no_unpickling

        base = load_model(cfg.model, task.auto_class, **task.model_kwargs())
        with no_unpickling(f"saved model '{model_dir}'"):
            return PeftModel.from_pretrained(base, model_dir)
    saved = cfg.model.model_copy(
        update={"name_or_path": str(model_dir), "init": "pretrained", "gguf_file": None,
                "config_overrides": {}, "revision": None}
    )
    return load_model(saved, task.auto_class, config=model_config)


def load_run_model(run: Path, cfg: RunConfig, checkpoint: str | None = None):
    """(task, tokenizer, model) of a finished run, ready for inference on the CPU or one GPU.

    A run still training may replace `best/` (or prune a checkpoint) while it is read: a save
    renames a whole new directory into place, so a load that saw the directory change under it
    is retried from the new one, never returned as a mix of two saves."""
    for _ in range(_LOAD_TRIES):
        source = rd.model_dir(run, checkpoint)
        before = _identity(source)
        try:
            loaded = _load_from(source, cfg)
        except Exception:
            if _identity(source) == before:
                raise  # not a save racing this load: a real error
            continue
        if _identity(source) == before:
            return loaded
    raise RunDirError(f"'{source}' was replaced {_LOAD_TRIES} times while it was loading (a training "
                      "run is saving it often); run again, or load a checkpoint it keeps")


_LOAD_TRIES = 3


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        stat = directory.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _load_from(source: Path, cfg: RunConfig):
    from finetune.model.load import load_tokenizer
    from finetune.tasks import get_task

    saved_model_check.check(source)
    model_config = saved_config(source)  # read once: it picks the architecture and builds the model
    task = get_task(cfg, model_config)
    tokenizer = load_tokenizer(cfg.model.model_copy(update={"name_or_path": str(source), "gguf_file": None}))
    _refuse_empty_vocabulary(tokenizer, source)
    task.prepare_tokenizer(tokenizer)
    model = load(cfg, task, source, model_config)
    if source.parent.name == rd.CHECKPOINTS_DIR:
        from finetune.saved.weight_average_file import load_saved_average

        load_saved_average(model, source)
    model.eval()
    return task, tokenizer, model


def verified_model_dir(run: Path, checkpoint: str | None = None) -> Path:
    """The saved model a command reads (`rd.model_dir`), checked whole before anything uses it."""
    source = rd.model_dir(run, checkpoint)
    saved_model_check.check(source)
    return source


def _refuse_empty_vocabulary(tokenizer, source: Path) -> None:
    """transformers builds a tokenizer of special tokens alone when its vocabulary file is gone;
    every text would become [UNK] and every row score alike."""
    special = set(tokenizer.all_special_tokens)
    if not [token for token in tokenizer.get_vocab() if token not in special]:
        raise RunDirError(f"saved model '{source}' is damaged: its tokenizer has no vocabulary (a file of "
                          f"{', '.join(saved_model_check.VOCABULARY_FILES[:3])} is missing or empty); restore it "
                          "from a copy, or use another checkpoint")
