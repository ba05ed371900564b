"""Weights are read from safetensors only: a pickle (.bin, .pt, ...) can run any code while it is
loaded, whatever torch's `weights_only` default of the day is. Every place finetune loads
weights (base models, adapters, saved models, checkpoints, merge inputs, `eval --model`) first
refuses a directory holding a pickle, and loads inside `no_unpickling()`, which turns any
torch.load a library might still attempt into the same refusal."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from finetune.errors import ModelError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
CONVERT = ("convert them to safetensors where you trust the source (the Hub's safetensors/convert "
           "Space, or safetensors.torch.save_file(torch.load(FILE, weights_only=True), "
           "'model.safetensors')), or delete them when a .safetensors copy is there")


def refusal(where: str, name: str, listed_in: str = "") -> str:
    listed = f" (listed in '{listed_in}')" if listed_in else ""
    return (f"{where}: '{name}'{listed} is a pickle, which can run code when loaded; finetune requires "
            f"safetensors weights: {CONVERT}")


def refuse_pickles(directory: Path, where: str) -> None:
    """Refuse `directory` if it holds a pickle file, or a weights index (model.safetensors.index.json,
    ...) naming a file that is not safetensors; `where`: how the message names the directory."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() in PICKLE_SUFFIXES and path.is_file():
            raise ModelError(refusal(where, path.name))
        if path.name.endswith(".index.json") and path.is_file():
            for shard in _shards(path):
                if not shard.endswith(".safetensors"):
                    raise ModelError(refusal(where, shard, listed_in=path.name))


def _shards(index: Path) -> set[str]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return {str(name) for name in weight_map.values()}
    except (OSError, ValueError, AttributeError):
        return set()  # not an index we understand: what it names is still never unpickled (below)


@contextlib.contextmanager
def no_unpickling(where: str):
    """While loading, any torch.load (transformers' and peft's fallback for .bin files, e.g. a
    Hub repo that only has pickles) raises ModelError instead of reading the file."""
    import torch

    original = torch.load

    def refuse(file, *args, **kwargs):
        raise ModelError(refusal(where, str(file)))

    torch.load = refuse
    try:
        yield
    finally:
        torch.load = original
