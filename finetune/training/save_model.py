"""Saving a training run's model (`best/`, the final `model/`): every process takes part, NaN/inf
weights are refused, and the directory appears whole or not at all (saved/saved_model.py writes
its files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetune.saved.saved_model import write
from finetune.storage import manifest
from finetune.storage import run_dir as rd


def save(run, target: Path, hint: str, extra: dict[str, Any] | None = None) -> None:
    """Save the run's model to `target` atomically, refusing NaN/inf weights (`hint`: how to go
    on, for that message). Every process must call it. `extra`: {file name: JSON content}."""
    from finetune.storage.checkpoint import atomic_dir
    from finetune.training.divergence import any_process, require_finite_weights

    acc = run.accelerator
    acc.wait_for_everyone()
    require_finite_weights(run.model, target.name, hint, any_process(acc))
    # Every rank takes part: under FSDP / ZeRO-3 this gathers the sharded weights.
    state_dict = acc.get_state_dict(run.model)
    if acc.is_main_process:
        with atomic_dir(target) as tmp:
            write(acc.unwrap_model(run.model), run.tokenizer, run.task, tmp, state_dict)
            for name, content in (extra or {}).items():
                (tmp / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
            manifest.write(tmp, target.name, skip=(rd.CARD_FILE,))  # last; the card may be rewritten or edited
    acc.wait_for_everyone()
