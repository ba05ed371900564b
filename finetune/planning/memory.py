"""The memory a process holds and may hold, and the refusal `train` gives a run whose predicted
peak does not fit: one line naming what to change (each suggestion re-planned and checked)."""

from __future__ import annotations

import os

from finetune.errors import ConfigError

# Caps the memory the plan compares with, in GB (tests; or to keep room for something else).
AVAILABLE_ENV = "FINETUNE_AVAILABLE_MEMORY_GB"
IGNORE_FLAG = "--ignore-memory-plan"


def _status_kb(field: str) -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


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
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        return None


def check_fits(plan, device, replan) -> None:
    """Refuse a run predicted not to fit. `replan(**changes)`: the plan with lora,
    batch_size, checkpointing or chunked changed (estimate.estimate's keywords)."""
    limit, where = available(device)
    if limit is None or plan.peak <= limit:
        return
    changes = suggestions(plan, limit, replan)
    advice = (f"set {' or '.join(changes)}" if changes else
              "even batch 1 with LoRA would not fit: use a machine with more memory or a smaller model")
    raise ConfigError(
        f"memory plan: training needs about {plan.peak / 1e9:.1f} GB per process (weights "
        f"{plan.bytes['weights'] / 1e9:.1f}, gradients {plan.bytes['gradients'] / 1e9:.1f}, optimizer "
        f"{plan.bytes['optimizer'] / 1e9:.1f}, activations {(plan.bytes['activations'] + plan.bytes['logits']) / 1e9:.1f}) "
        f"and {where} is {limit / 1e9:.1f} GB; {advice}, or pass {IGNORE_FLAG} to try anyway"
    )


def suggestions(plan, limit: int, replan) -> list[str]:
    """The single changes, each of which would fit, cheapest to the run first."""
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
