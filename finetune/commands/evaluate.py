"""`finetune eval`: score a finished run (its final model, `best`, or a checkpoint) on a split,
or score a model that was never trained here (`--model`: the zero-shot baseline)."""

from __future__ import annotations

from pathlib import Path

from finetune.configuration.config import RunConfig
from finetune.errors import ConfigError, RunDirError, RunInUse
from finetune.evaluation.result_files import write_results
from finetune.storage import run_dir as rd


def evaluate_run(run: Path, cfg: RunConfig, split: str, checkpoint: str | None = None) -> dict:
    """Results go to eval_<split>[.<checkpoint>].json: a checkpoint never overwrites the final
    model's; the file says which weights and which rows it scored."""
    from finetune.storage.run_lock import RunLock
    from finetune.saved.saved_model import load_run_model
    from finetune.training.assemble import make_accelerator

    with RunLock() as lock:
        beside = _lock_or_score_beside_training(run, lock, checkpoint)
        accelerator = make_accelerator(cfg)
        if beside:
            accelerator.print(beside.note)
        # Named before loading: a training run beside this one may prune the checkpoint once it
        # is loaded, and a lookup after that would fail a load that had succeeded.
        weights = rd.model_dir(run, checkpoint).relative_to(run).as_posix()
        task, tokenizer, model = load_run_model(run, cfg, checkpoint)
        metrics, records = score_split(cfg, task, tokenizer, model, split, accelerator, weights)
        if accelerator.is_main_process:
            if beside:
                beside.check_still_there(run)
            write_results(run, split, metrics, records, checkpoint)
            task.write_figures(run, split, records, checkpoint)
    return metrics


class _BesideTraining:
    """Scoring `best` or a checkpoint while another process (training, mostly) holds the run.
    Its results files carry the weights' name, which training never writes, so the two cannot
    collide; what can happen meanwhile is `train --overwrite` replacing the whole run once
    training ends, and then these results would belong to a run that is gone."""

    def __init__(self, run: Path, checkpoint: str, holder: str):
        self.run_id = rd.run_id(run)
        self.note = f"'{run}' is held by another finetune process (PID {holder}): scoring '{checkpoint}' beside it"

    def check_still_there(self, run: Path) -> None:
        if rd.run_id(run) != self.run_id:
            raise RunDirError(f"'{run}' was replaced by a new run while it was being scored; "
                              "nothing was written: score the new run's weights instead")


def _lock_or_score_beside_training(run: Path, lock, checkpoint: str | None) -> _BesideTraining | None:
    """Hold the run like a writer (a `train` of it meanwhile is refused, naming this PID). If
    another process holds it, only the final model is refused: it is training's own output, and
    its eval_<split>.json is what training writes last."""
    try:
        lock.acquire(run)
    except RunInUse as busy:
        if checkpoint is None:
            raise RunInUse(f"{busy} (or score its best model or a checkpoint now: "
                           "--checkpoint best)", busy.holder) from busy
        return _BesideTraining(run, checkpoint, busy.holder)
    return None


def evaluate_model(cfg: RunConfig, split: str, out: Path) -> dict:
    """The model `cfg.model` names, as it is (pretrained, or untrained with `init: scratch`):
    what fine-tuning starts from. Results and predictions go to `out`."""
    from finetune.storage.run_lock import RunLock
    from finetune.training.assemble import make_accelerator

    if cfg.model.tokenizer.train:
        raise ConfigError("eval --model: model.tokenizer.train learns a vocabulary in training; "
                          "score such a model after `finetune train`, or drop the key")
    with RunLock() as lock:
        accelerator = make_accelerator(cfg)
        task, tokenizer, model = load_as_released(cfg)
        if accelerator.is_main_process:
            rd.claim_results_dir(out, lock)
        weights = f"{cfg.model.name_or_path} ({'untrained' if cfg.model.init == 'scratch' else 'as released'})"
        metrics, records = score_split(cfg, task, tokenizer, model, split, accelerator, weights)
        if accelerator.is_main_process:
            rd.unlinked(out / rd.CONFIG_FILE).write_text(cfg.to_yaml(), encoding="utf-8")
            write_results(out, split, metrics, records)
            task.write_figures(out, split, records)
    return metrics


def load_as_released(cfg: RunConfig):
    """The task, tokenizer and model `cfg.model` names, before any training here: what
    `eval --model` scores (and what the generation benchmark times)."""
    from accelerate.utils import set_seed

    from finetune.data.splits import load_splits
    from finetune.model.load import load_model, load_model_config, load_tokenizer, pad_like_tokenizer
    from finetune.tasks import get_task

    set_seed(cfg.training.seed)  # a new classification head starts from the run's seed
    model_config = load_model_config(cfg.model)
    task = get_task(cfg, model_config)
    tokenizer = load_tokenizer(cfg.model)
    task.prepare_tokenizer(tokenizer)
    # A classifier's label set comes from the training split, as in training.
    task.fit_to_data(load_splits(cfg.data, cfg.training.seed, need_train=not task.generates,
                                 check=task.check_split))
    model = load_model(cfg.model, task.auto_class, config=model_config, **task.model_kwargs())
    pad_like_tokenizer(model, tokenizer)  # as training does
    return task, tokenizer, model


def score_split(cfg: RunConfig, task, tokenizer, model, split: str, accelerator, weights: str):
    """Metrics and prediction records of `model` on one split, batched as training evaluates."""
    from finetune.data.length_limits import check_lengths
    from finetune.data.splits import load_split
    from finetune.evaluation.inference import EvalLoaders, evaluate, make_generation_loader
    from finetune.training.assemble import make_eval_loader

    check_lengths(cfg, task.kind, model.config)  # overrides may have raised a length
    raw, rows = load_split(cfg.data, split, check=task.check_split)
    accelerator.print(f"scoring {weights} on split '{split}': {rows}")
    with accelerator.main_process_first():
        encoded = task.encode(raw, split, tokenizer)
    loaders = EvalLoaders(
        make_eval_loader(cfg, task, tokenizer, encoded, model.config),
        make_generation_loader(task, tokenizer, raw, model.config),
    ).prepared(accelerator)
    model = accelerator.prepare(model)
    metrics, records = evaluate(task, model, loaders, raw, accelerator, tokenizer, progress=True)
    return {**metrics, "split": split, "rows": rows, "weights": weights}, records
