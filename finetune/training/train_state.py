"""What a resumable checkpoint holds, and picking a run up from one.

A checkpoint holds the model (`model.safetensors`) or LoRA adapter, the optimizer
(`optimizer.safetensors` + `.json`), the scheduler and loop counters (`scheduler.json`), each
process's RNG state (`rng_<rank>.safetensors`) and `train_state.json`: the step, the position in
the data (epoch and micro-batches consumed in it), the running loss window, the best metric so
far, how long metrics.jsonl was, the SHA-256 of the data files and how many processes trained
(a resume on another count is refused); with training.ema_decay, also the weight average
(`weight_average.safetensors`). Nothing in it is a pickle.
`manifest.json`, written last, lists every file with its size and hash (see `manifest.py`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from finetune.storage import checkpoint as ck
from finetune.storage import manifest
from finetune.storage import run_dir as rd
from finetune.storage.safetensors_only import refuse_pickles
from finetune.saved import saved_model
from finetune.storage import state_files as sf
from finetune.model.attn_kernel import AUTO
from finetune.configuration.config import RunConfig
from finetune.errors import ConfigError, DataError, RunDirError
from finetune.saved.weight_average_file import WEIGHTS_FILE as WEIGHT_AVERAGE_FILE

FORMAT = 2  # train_state.json "format"; before it, Accelerate's save_state wrote pickles

# The settings a resumed run may change (a key, or a whole section); any other change makes the
# saved state meaningless (other weights, other data order) and is refused naming the key.
# training.max_steps / epochs may only grow past the checkpoint's step (checked separately).
RESUMABLE_KEYS = (
    "training.lr", "training.max_steps", "training.epochs", "training.on_nan",
    "training.output_dir", "training.save_every", "training.keep_checkpoints",
    "training.log_every", "training.eval_every", "training.eval_each_epoch",
    "training.eval_before_training", "training.report_to", "training.mmap_threshold_mb",
    "training.early_stopping_patience", "training.early_stopping_threshold",
    "eval", "data.max_eval_samples", "data.cache_dir", "model.token", "model.license",
    "data.files",  # may move: the files are compared by content (train_state.json data_sha256)
)


@dataclass
class Position:
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` already trained on
    loss_sum: float = 0.0  # running loss window since the last metrics line
    loss_count: int = 0
    last_eval_step: int = -1
    best: dict = field(default_factory=dict)
    evals_without_improvement: int = 0  # for training.early_stopping_patience
    metrics_bytes: int = 0  # metrics.jsonl is cut back to this on resume


def check_compatible(cfg: RunConfig, checkpoint: Path, data_sha256: dict[str, str]) -> float:
    """Refuse to continue a checkpoint with a config or data that train a different thing;
    return how much training.lr changed (new / saved), which `load` applies to the schedule."""
    import yaml

    with _reading(checkpoint, rd.STATE_FILE):
        state = json.loads((checkpoint / rd.STATE_FILE).read_text(encoding="utf-8"))
        recorded, step, steps_per_epoch = state["data_sha256"], state["step"], state["steps_per_epoch"]
    with _reading(checkpoint, rd.CONFIG_FILE):
        saved = yaml.safe_load((checkpoint / rd.CONFIG_FILE).read_text(encoding="utf-8"))
        saved_lr = saved["training"]["lr"]
    _check_processes(state.get("processes"), checkpoint, processes_now())
    for split, digest in recorded.items():
        if data_sha256.get(split) != digest:
            raise DataError(
                f"--resume: data.files.{split} '{cfg.data.files.get(split, '?')}' has changed since "
                f"{checkpoint.name} was saved; restore the file, or start a new run on the new data"
            )
    new = cfg.model_dump(mode="json")
    if new["model"].get("attn_implementation") in (None, AUTO):
        new["model"]["attn_implementation"] = saved.get("model", {}).get("attn_implementation")
    changed = [key for key in _differing_keys(_with_defaults(saved), new)
               if not any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)]
    if changed:
        raise ConfigError(
            f"--resume: '{changed[0]}' differs from the config saved in {checkpoint}; a resumed "
            f"run must train the same model on the same data (only {', '.join(RESUMABLE_KEYS[:4])}, "
            "evaluation, logging and save settings may change); start a new run instead"
        )
    t = cfg.training
    total = t.max_steps or max(1, math.ceil(t.epochs * steps_per_epoch))  # as setup() counts
    if total < step:
        key = "training.max_steps" if t.max_steps else "training.epochs"
        raise ConfigError(
            f"--resume: {key} gives {total} steps, below the {step} of {checkpoint.name}; "
            f"raise {key}, or resume from an earlier checkpoint"
        )
    return t.lr / saved_lr


def processes_now() -> int:
    """How many processes this launch trains with, known before Accelerate starts: torchrun and
    `accelerate launch` set WORLD_SIZE for each of them."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _check_processes(recorded: int | None, checkpoint: Path, now: int) -> None:
    """The global batch is batch_size x accumulation x processes, and each process reads every
    n-th batch: on another count the saved data position and schedule would be wrong.
    `recorded` None: a checkpoint from before train_state.json held it; the run's config.yaml
    header then says how many processes last trained the run (none: unknown, allowed)."""
    if recorded is None:
        recorded = _processes_in_header(checkpoint.parent.parent / rd.CONFIG_FILE)
    if recorded is not None and recorded != now:
        raise ConfigError(
            f"--resume: {checkpoint.name} was saved by a run on {recorded} process(es) and this one "
            f"has {now}, which changes the global batch and where each process is in the data; "
            f"resume with {recorded} process(es) (e.g. torchrun --nproc_per_node {recorded}), or "
            "start a new run (resuming on another count is not supported yet)"
        )


def _processes_in_header(config: Path) -> int | None:
    """`# N process(es) x ...`, the first line assemble.write_config gives the run's config.yaml."""
    import re

    try:
        with open(config, encoding="utf-8") as handle:
            found = re.match(r"# (\d+) process\(es\) x ", handle.readline())
    except (OSError, UnicodeDecodeError):
        return None
    return int(found.group(1)) if found else None


def _with_defaults(saved: dict) -> dict:
    """A config saved by an older finetune lacks the keys added since; it trained as their
    defaults do, so those defaults fill them in (a key set to another value still differs)."""
    from pydantic import ValidationError

    try:
        return RunConfig.model_validate(saved).model_dump(mode="json")
    except ValidationError:  # a key removed since: compare as saved, naming it
        return saved


def _differing_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in {**old, **new}:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differing_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return sorted(keys)


def data_sha256(cfg: RunConfig) -> dict[str, str]:
    """SHA-256 of each local data file (Hub datasets are pinned by data.dataset/revision)."""
    from finetune.data.splits import local_files

    return {split: manifest.sha256_file(Path(path)) for split, path in local_files(cfg.data).items()
            if Path(path).is_file()}


def save(run, pos: Position) -> Path:
    """Write checkpoints/step-N atomically: every process writes its RNG state into the same
    temporary directory, the main process the rest and, last, the manifest; then it publishes
    the directory and prunes old ones."""
    acc = run.accelerator
    target = run.out / rd.CHECKPOINTS_DIR / rd.checkpoint_name(pos.step)
    if acc.is_main_process:
        pos.metrics_bytes = _size(run.out / rd.METRICS_FILE)
    # Every rank takes part in gathering: under FSDP the weights and optimizer state are sharded.
    weights = None if run.cfg.lora.enabled else acc.get_state_dict(run.model)
    optimizer = _full_optimizer_state(run)
    with ck.atomic_dir(target, owner=acc.is_main_process) as tmp:
        acc.wait_for_everyone()  # the main process has made `tmp`
        sf.save_rng(tmp, acc.process_index)
        if acc.is_main_process:
            _save_main(run, pos, tmp, weights, optimizer)
        acc.wait_for_everyone()  # every process's RNG file is in
        if acc.is_main_process:
            manifest.write(tmp, target.name)
    if acc.is_main_process:
        ck.prune(run.out, run.cfg.training.keep_checkpoints, pos.best.get("step"))
    acc.wait_for_everyone()
    return target


def _save_main(run, pos: Position, tmp: Path, weights, optimizer: dict) -> None:
    # The model part is a saved model directory, loadable like a finished model:
    # `finetune eval --checkpoint step-N`. LoRA: the adapter (weights is None); else the full
    # weights, gathered from every process.
    saved_model.write(run.accelerator.unwrap_model(run.model), run.tokenizer, run.task, tmp, weights)
    sf.save_optimizer(optimizer, tmp)
    scaler = run.accelerator.scaler
    sf.save_scheduler(run.scheduler.state_dict(), {
        "accelerator_step": run.accelerator.step,
        "scaler": scaler.state_dict() if scaler is not None else None,
    }, tmp)
    (tmp / rd.CONFIG_FILE).write_text(run.cfg.to_yaml(), encoding="utf-8")
    state = {**asdict(pos), "format": FORMAT, "steps_per_epoch": run.steps_per_epoch,
             "data_sha256": run.data_sha256, "processes": run.accelerator.num_processes}
    if run.weight_average is not None:  # the raw weights above continue training; this, the average
        from safetensors.torch import save_file

        tensors, state["weight_average"] = run.weight_average.state()
        save_file(tensors, tmp / WEIGHT_AVERAGE_FILE)
    (tmp / rd.STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")


def _full_optimizer_state(run) -> dict:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(run.model, run.optimizer.optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load(run, checkpoint: Path, lr_scale: float = 1.0) -> Position:
    """Restore model, optimizer, scheduler and RNG from safetensors and JSON only; return where
    in the data to continue. `lr_scale`: new training.lr / the checkpoint's."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    acc = run.accelerator
    refuse_pickles(checkpoint, f"--resume: checkpoint '{checkpoint}'")  # nothing below reads one; say so
    with _reading(checkpoint, rd.STATE_FILE):
        state = json.loads((checkpoint / rd.STATE_FILE).read_text(encoding="utf-8"))
    _check_processes(state.get("processes"), checkpoint, acc.num_processes)  # as Accelerate counts them
    with _reading(checkpoint, rd.ADAPTER_WEIGHTS_FILE if run.cfg.lora.enabled else rd.MODEL_WEIGHTS_FILE):
        _load_weights(run, checkpoint)
    with _reading(checkpoint, sf.OPTIMIZER_TENSORS):
        set_optimizer_state_dict(run.model, run.optimizer.optimizer, sf.load_optimizer(checkpoint),
                                 options=StateDictOptions(full_state_dict=True))
    with _reading(checkpoint, sf.SCHEDULER_JSON):
        loop = sf.load_scheduler(checkpoint)
        run.scheduler.load_state_dict(loop["scheduler"])
        acc.step = loop["accelerator_step"]
        if acc.scaler is not None and loop["scaler"] is not None:
            acc.scaler.load_state_dict(loop["scaler"])
    if lr_scale != 1.0:
        _scale_lr(run, lr_scale)
    with _reading(checkpoint, sf.rng_file(acc.process_index)):
        sf.load_rng(checkpoint, acc.process_index)
    if run.weight_average is not None:
        from safetensors.torch import load_file

        with _reading(checkpoint, WEIGHT_AVERAGE_FILE):
            run.weight_average.restore(load_file(checkpoint / WEIGHT_AVERAGE_FILE), state["weight_average"])
    pos = Position(**{k: v for k, v in state.items() if k in Position.__dataclass_fields__})
    metrics = run.out / rd.METRICS_FILE
    if acc.is_main_process and metrics.is_file():
        rd.replace_link(metrics)  # a symlink's target is never cut back or appended to
        # Lines written after the checkpoint (by the interrupted run) are written again.
        os.truncate(metrics, min(pos.metrics_bytes, _size(metrics)))
    return pos


@contextlib.contextmanager
def _reading(checkpoint: Path, name: str):
    """A file that passed the manifest check yet does not parse was forged together with its
    manifest: one line naming it, never a traceback (and never a pickle: nothing here unpickles)."""
    import yaml
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, yaml.YAMLError, OSError, ValueError, KeyError, TypeError, IndexError,
            RuntimeError) as exc:  # RuntimeError: tensors of the wrong shape
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(
            f"--resume: '{checkpoint / name}' cannot be read ({detail}); the checkpoint was "
            "altered after it was written; resume from another checkpoint or start a new run"
        ) from exc


def _load_weights(run, checkpoint: Path) -> None:
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    inner = run.accelerator.unwrap_model(run.model)
    if run.cfg.lora.enabled:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(inner, load_file(checkpoint / rd.ADAPTER_WEIGHTS_FILE))
        unexpected = result.unexpected_keys
    else:
        weights = load_file(checkpoint / rd.MODEL_WEIGHTS_FILE)
        result = set_model_state_dict(run.model, weights, options=StateDictOptions(full_state_dict=True, strict=False))
        unexpected = result.unexpected_keys
        # save_pretrained stores a tied weight once; every other missing key is a real gap.
        missing = set(result.missing_keys) - _tied_keys(inner)
        if missing:
            unexpected = sorted(missing)
    if unexpected:
        raise ConfigError(
            f"'{checkpoint}': its weights do not fit this model ({unexpected[0]}); resume with the "
            "run's own config"
        )


def _tied_keys(model) -> set[str]:
    """Keys that share storage with another key of the state dict (tied embeddings)."""
    from collections import Counter

    pointers = {key: t.untyped_storage().data_ptr() for key, t in model.state_dict().items()}
    shared = Counter(pointers.values())
    return {key for key, pointer in pointers.items() if shared[pointer] > 1}


def _scale_lr(run, scale: float) -> None:
    """training.lr changed on resume: the schedule keeps its shape around the new peak."""
    sched = run.scheduler
    sched.base_lrs = [lr * scale for lr in sched.base_lrs]
    sched._last_lr = [lr * scale for lr in sched._last_lr]
    for group in run.optimizer.param_groups:
        group["lr"] *= scale
        if "initial_lr" in group:
            group["initial_lr"] *= scale


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0
