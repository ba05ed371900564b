"""Optimizer, scheduler and RNG state as safetensors + JSON, so that loading a checkpoint can
never run code (a pickle can). Tensors go to safetensors, everything else to JSON; reading
back uses only `safetensors.torch.load_file` and `json.loads`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
SCHEDULER_JSON = "scheduler.json"


def rng_file(rank: int) -> str:
    return f"rng_{rank}.safetensors"


# ----------------------------------------------------------------------------- optimizer


def save_optimizer(state: dict, directory: Path) -> None:
    """`state`: a full optimizer state dict ({"state": {param: {name: value}}, "param_groups"})."""
    import torch
    from safetensors.torch import save_file

    tensors, other = {}, {}
    for param, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param}\t{name}"] = value.detach().cpu().contiguous()
            else:
                other.setdefault(str(param), {})[name] = value
    save_file(tensors, directory / OPTIMIZER_TENSORS)
    _write_json(directory / OPTIMIZER_JSON, {"param_groups": state["param_groups"], "other": other,
                                             "keys_are_ints": _int_keys(state["state"])})


def load_optimizer(directory: Path) -> dict:
    from safetensors.torch import load_file

    meta = json.loads((directory / OPTIMIZER_JSON).read_text(encoding="utf-8"))
    as_key = int if meta["keys_are_ints"] else str
    state: dict = {}
    for key, tensor in load_file(directory / OPTIMIZER_TENSORS).items():
        param, name = key.split("\t")
        state.setdefault(as_key(param), {})[name] = tensor
    for param, values in meta["other"].items():
        state.setdefault(as_key(param), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def _int_keys(state: dict) -> bool:
    return bool(state) and all(isinstance(k, int) for k in state)


# ----------------------------------------------------------------------------- scheduler, loop


def save_scheduler(scheduler_state: dict, extra: dict, directory: Path) -> None:
    """The LR scheduler's state dict (a LambdaLR's lambdas are functions: their state is {}),
    plus small loop state (Accelerate's micro-step counter, the fp16 loss scaler)."""
    _write_json(directory / SCHEDULER_JSON, {"scheduler": scheduler_state, **extra})


def load_scheduler(directory: Path) -> dict:
    return json.loads((directory / SCHEDULER_JSON).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- RNG


def save_rng(directory: Path, rank: int) -> None:
    """This process's Python, NumPy, torch CPU and CUDA generator states."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = cuda_state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    metadata = {
        "python": json.dumps(random.getstate()),
        "numpy": json.dumps([kind, keys.tolist(), pos, has_gauss, gauss]),
    }
    save_file(tensors, directory / rng_file(rank), metadata=metadata)


def load_rng(directory: Path, rank: int) -> None:
    import numpy as np
    import torch
    from safetensors import safe_open

    with safe_open(str(directory / rng_file(rank)), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    version, internal, gauss = json.loads(metadata["python"])
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = json.loads(metadata["numpy"])
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[f"cuda_{i}"] for i in range(len(tensors) - 1) if f"cuda_{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _write_json(path: Path, content: dict) -> None:
    # allow_nan=False: a state that JSON cannot hold exactly fails here, not on resume.
    path.write_text(json.dumps(content, indent=1, allow_nan=False), encoding="utf-8")
