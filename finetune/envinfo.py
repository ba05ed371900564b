"""`finetune env`: what a bug report needs to know about this machine."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ["finetune", "torch", "transformers", "datasets", "accelerate", "peft", "evaluate",
            "tokenizers", "safetensors", "tensorboard", "matplotlib", "wandb", "deepspeed"]
ENV_PREFIXES = ("ACCELERATE_", "CUDA_VISIBLE_DEVICES", "WORLD_SIZE", "RANK", "LOCAL_RANK",
                "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS", "HF_HUB_OFFLINE")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def report() -> dict:
    import torch

    info: dict = {"python": platform.python_version(), "platform": platform.platform()}
    info.update({name: _version(name) for name in PACKAGES})
    from finetune import __version__

    info["finetune"] = __version__  # the code running, even when not pip-installed
    info["cpu_threads"] = f"{torch.get_num_threads()} torch threads, {os.cpu_count()} logical CPUs"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda"] = f"{torch.version.cuda}; {len(names)} device(s): {', '.join(names)}"
        info["bf16"] = str(torch.cuda.is_bf16_supported())
    else:
        info["cuda"] = "no CUDA device"
        # bf16 runs on any CPU; it is fast only with AVX512-BF16 / AMX.
        info["bf16"] = f"CPU (capability {torch.backends.cpu.get_cpu_capability()})"
    info["accelerate_config"] = _accelerate_config()
    # Names only for anything that might hold a credential; these are launcher settings.
    info["env"] = {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)
                   and not any(word in k for word in ("TOKEN", "KEY", "SECRET", "PASSWORD"))} or "none set"
    return info


def _accelerate_config() -> str:
    try:
        from accelerate.commands.config import default_config_file
    except ImportError:
        return "accelerate not importable"
    path = default_config_file  # what `accelerate launch` reads without --config_file
    if not os.path.isfile(path):
        return f"none ({path} absent: `accelerate launch` uses its defaults)"
    with open(path, encoding="utf-8") as handle:
        body = " ".join(line.strip() for line in handle if line.strip() and not line.startswith("#"))
    return f"{path}: {body}"


def format_report(info: dict) -> str:
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"- {key}: {value}")
    return "\n".join(lines)
