"""What a resumable checkpoint holds, and picking a run up from one.

A checkpoint is `accelerator.save_state` (model or LoRA adapter, optimizer, scheduler, RNG
states of every process) plus `train_state.json`: the step, the position in the data (epoch and
micro-batches consumed in it), the running loss window, the best metric so far and how long
metrics.jsonl was. The JSON is written last, so a directory without it is not a checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from finetune import checkpoint as ck
from finetune import run_dir as rd
from finetune.attn_kernel import AUTO
from finetune.config import RunConfig
from finetune.errors import ConfigError
from finetune.restore import save_beside

# Changing any of these makes the saved state meaningless (other weights, other data order).
# Everything else (max_steps, epochs, save_every, eval cadence...) may change to extend a run.
FROZEN_SECTIONS = ("task", "model", "lora", "data")
FROZEN_TRAINING = ("batch_size", "gradient_accumulation_steps", "seed", "group_by_length",
                   "mixed_precision", "lr", "weight_decay", "scheduler", "warmup_ratio")


@dataclass
class Position:
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` already trained on
    loss_sum: float = 0.0  # running loss window since the last metrics line
    loss_count: int = 0
    last_eval_step: int = -1
    best: dict = field(default_factory=dict)
    metrics_bytes: int = 0  # metrics.jsonl is cut back to this on resume


def check_compatible(cfg: RunConfig, checkpoint: Path) -> None:
    """Refuse to continue a checkpoint with a config that trains a different thing."""
    import yaml

    saved = yaml.safe_load((checkpoint / rd.CONFIG_FILE).read_text(encoding="utf-8"))
    new = cfg.model_dump(mode="json")
    if new["model"].get("attn_implementation") in (None, AUTO):
        new["model"]["attn_implementation"] = saved.get("model", {}).get("attn_implementation")
    changed = [s for s in FROZEN_SECTIONS if saved.get(s) != new.get(s)]
    for section in changed:
        old_part, new_part = saved.get(section), new.get(section)
        if isinstance(old_part, dict) and isinstance(new_part, dict):
            key = next(k for k in {**old_part, **new_part} if old_part.get(k) != new_part.get(k))
            changed[changed.index(section)] = f"{section}.{key}"
    changed += [f"training.{k}" for k in FROZEN_TRAINING
                if saved.get("training", {}).get(k) != new["training"].get(k)]
    if changed:
        raise ConfigError(
            f"--resume: '{changed[0]}' differs from the config saved in {checkpoint}; a resumed "
            "run must train the same model on the same data (only max_steps, epochs and "
            "logging/eval/save settings may change); start a new run instead"
        )


def register(accelerator, scheduler) -> None:
    """Let save_state/load_state carry the scheduler, and store a LoRA model as a PEFT adapter
    (not the frozen base weights, which would make each checkpoint as big as the model)."""
    accelerator.register_for_checkpointing(scheduler)

    def save_adapter(models, weights, output_dir):
        from peft import PeftModel

        for i, model in reversed(list(enumerate(models))):
            inner = accelerator.unwrap_model(model)
            if isinstance(inner, PeftModel):
                if accelerator.is_main_process:
                    inner.save_pretrained(output_dir)  # adapter_model.safetensors + its config
                del weights[i]

    def load_adapter(models, input_dir):
        from peft import PeftModel, set_peft_model_state_dict
        from safetensors.torch import load_file

        for model in list(models):
            inner = accelerator.unwrap_model(model)
            if isinstance(inner, PeftModel):
                path = Path(input_dir) / "adapter_model.safetensors"
                weights = load_file(path, device=str(accelerator.device))
                result = set_peft_model_state_dict(inner, weights)
                if result.unexpected_keys:
                    raise ConfigError(
                        f"'{input_dir}': adapter weights do not fit this model "
                        f"({result.unexpected_keys[0]}); resume with the run's own config"
                    )
                models.remove(model)

    accelerator.register_save_state_pre_hook(save_adapter)
    accelerator.register_load_state_pre_hook(load_adapter)


def save(run, pos: Position) -> Path:
    """Write checkpoints/step-N atomically (every process writes its RNG state into the same
    temporary directory; the main process publishes it), then prune old ones."""
    acc = run.accelerator
    target = run.out / ck.CHECKPOINTS_DIR / ck.checkpoint_name(pos.step)
    tmp = target.with_name(f".tmp-{target.name}")
    if acc.is_main_process:
        pos.metrics_bytes = _size(run.out / rd.METRICS_FILE)
        ck.begin(target)
    acc.wait_for_everyone()
    with ck.disk_full_is_clear(target):
        try:
            acc.save_state(str(tmp))
            if acc.is_main_process:
                # Loadable like a finished model: `finetune eval --checkpoint step-N`.
                save_beside(acc.unwrap_model(run.model), run.tokenizer, run.task, tmp)
                (tmp / rd.CONFIG_FILE).write_text(run.cfg.to_yaml(), encoding="utf-8")
                (tmp / ck.STATE_FILE).write_text(json.dumps(asdict(pos), indent=2), encoding="utf-8")
        except BaseException:
            ck.abandon(tmp)
            raise
    acc.wait_for_everyone()
    if acc.is_main_process:
        ck.publish(tmp, target)
        ck.prune(run.out, run.cfg.training.keep_checkpoints, pos.best.get("step"))
    acc.wait_for_everyone()
    return target


def load(run, checkpoint: Path) -> Position:
    """Restore model, optimizer, scheduler and RNG; return where in the data to continue."""
    state = json.loads((checkpoint / ck.STATE_FILE).read_text(encoding="utf-8"))
    run.accelerator.load_state(str(checkpoint))
    pos = Position(**state)
    metrics = run.out / rd.METRICS_FILE
    if run.accelerator.is_main_process and metrics.is_file():
        # Lines written after the checkpoint (by the interrupted run) are written again.
        os.truncate(metrics, min(pos.metrics_bytes, _size(metrics)))
    return pos


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0
