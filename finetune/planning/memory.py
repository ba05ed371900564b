"""The memory a process holds and may hold, and the refusal `train` gives a run whose predicted
peak does not fit: one line naming what to change (each suggestion re-planned and checked)."""

from __future__ import annotations

import os

from finetune.errors import ConfigError

# Caps the memory the plan compares with, in GB (tests; or to keep room for something else).
AVAILABLE_ENV = "FINETUNE_AVAILABLE_MEMORY_GB"
IGNORE_FLAG = "--ignore-memory-plan"


def _proc_bytes(path: str, field: str) -> int | None:
    """A `Field:  N kB` line of a Linux /proc file, in bytes (None where there is none)."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _status_kb(field: str) -> int:
    return _proc_bytes("/proc/self/status", field) or 0


def resident_bytes() -> int:
    """This process's resident memory now (Linux; 0 where unknown)."""
    return _status_kb("VmRSS")


def peak_resident_bytes() -> int:
    """The most this process has held resident (VmHWM; ru_maxrss elsewhere)."""
    peak = _status_kb("VmHWM")
    if peak:
        return peak
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def available(device) -> tuple[int | None, str]:
    """(bytes one process may use, what they are) on `device`; None where unknown."""
    if os.environ.get(AVAILABLE_ENV):
        return int(float(os.environ[AVAILABLE_ENV]) * 1e9), f"{AVAILABLE_ENV}"
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_properties(device).total_memory, f"the GPU ({device})"
    if device.type != "cpu":
        return None, str(device)
    free = _meminfo("MemAvailable")
    if free is None:
        return None, "this machine"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # processes on this host share its memory
    return (free + resident_bytes()) // local, "this machine's available RAM" + (f" / {local} processes" if local > 1 else "")


def _meminfo(field: str) -> int | None:
    found = _proc_bytes("/proc/meminfo", field)
    if found is not None:
        return found
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        return None


def check_fits(plan, device, replan) -> None:
    """Refuse a run predicted not to fit, in training or in its evaluations. `replan(**changes)`:
    the plan with lora, batch_size, checkpointing, chunked or eval_batch_size changed
    (estimate.estimate's keywords)."""
    limit, where = available(device)
    if limit is None or plan.needed <= limit:
        return
    changes = suggestions(plan, limit, replan) if plan.peak > limit else []
    evaluation = plan.eval_peak > limit
    eval_change = _eval_batch(plan, limit, replan) if evaluation else None
    if plan.peak > limit and not changes:
        advice = "even batch 1 with LoRA would not fit: use a machine with more memory or a smaller model"
    elif evaluation and not eval_change:
        advice = "even an evaluation batch of 1 would not fit: use a machine with more memory or a smaller model"
    else:
        advice = "set " + " and ".join(filter(None, [" or ".join(changes), eval_change]))
    b = plan.bytes
    what = (f"training needs about {plan.peak / 1e9:.1f} GB per process (weights {b['weights'] / 1e9:.1f}, "
            f"gradients {b['gradients'] / 1e9:.1f}, optimizer {b['optimizer'] / 1e9:.1f}, activations "
            f"{(b['activations'] + b['logits']) / 1e9:.1f})" if plan.peak > limit else
            f"evaluation needs about {plan.eval_peak / 1e9:.1f} GB per process (eval.batch_size {plan.eval_batch_size})")
    raise ConfigError(f"memory plan: {what} and {where} is {limit / 1e9:.1f} GB; {advice}, "
                      f"or pass {IGNORE_FLAG} to try anyway")


def _eval_batch(plan, limit: int, replan) -> str | None:
    batch = plan.eval_batch_size // 2
    while batch >= 1:
        if replan(eval_batch_size=batch).eval_peak <= limit:
            return f"eval.batch_size={batch}"
        batch //= 2
    return None


def suggestions(plan, limit: int, replan) -> list[str]:
    """The single changes to training, each of which would fit, cheapest to the run first."""
    def fits(**change) -> bool:
        try:
            return replan(**change).peak <= limit
        except Exception:  # e.g. a model without checkpointing support: not a suggestion
            return False

    found = []
    if not plan.activation_checkpointing and fits(checkpointing=True):
        found.append("training.activation_checkpointing=true")
    if plan.bytes.get("logits") and not plan.chunked_loss and fits(chunked=True):
        found.append("training.chunked_loss=true")
    batch = plan.batch_size // 2
    while batch >= 1:
        if fits(batch_size=batch):
            accum = -(-plan.batch_size * plan.gradient_accumulation_steps // batch)
            found.append(f"training.batch_size={batch} training.gradient_accumulation_steps={accum} "
                         "(the same global batch)")
            break
        batch //= 2
    if not plan.lora and fits(lora=True):
        found.append("lora.enabled=true")
    return found
