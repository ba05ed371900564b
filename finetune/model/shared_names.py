"""How files meant for sharing (the model card, `adapter_config.json`, peft's cards) name the base
model and the dataset: a Hub id or a `package:NAME/...` path as written, a local path relative to
the run directory, never an absolute path of the training machine.

Loading never depends on these names: `eval`, `predict` and `merge` take the base model from the
run's config.yaml, a local record that keeps the path as given."""

from __future__ import annotations

import os
from pathlib import Path

from finetune.configuration.paths import PREFIX


def is_hub_id(name: str) -> bool:
    """Neither a `package:` path nor a local path (absolute, or one that exists)."""
    local = Path(name).expanduser()
    return not (name.startswith(PREFIX) or local.is_absolute() or local.exists())


def shared_name(name: str, run: Path) -> str:
    if name.startswith(PREFIX) or is_hub_id(name):
        return name
    return Path(os.path.relpath(Path(name).expanduser().resolve(), Path(run).resolve())).as_posix()


def name_base_model(model, name: str, run: Path) -> None:
    """Give the loaded model its shared name: peft copies `model.name_or_path` into every
    adapter_config.json it writes (checkpoints included) and the config's into its README."""
    model.name_or_path = model.config.name_or_path = shared_name(name, run)
