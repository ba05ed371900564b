"""`--checkpoint` picks a model saved inside the run (`best`, `step-000040`). A value that
leaves the run directory (an absolute path, `..`, a symlink out) would load weights and a
tokenizer this run never wrote, so it is refused before anything is read."""

from __future__ import annotations

from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.errors import RunDirError


def check_checkpoint_flag(run: Path, checkpoint: str | None) -> None:
    if checkpoint is None:
        return
    name = Path(checkpoint)
    root = run.resolve()
    candidates = (run / name, run / rd.CHECKPOINTS_DIR / name)  # where rd.model_dir looks
    if name.is_absolute() or ".." in name.parts or any(not c.resolve().is_relative_to(root) for c in candidates):
        raise RunDirError(
            f"--checkpoint '{checkpoint}': leads outside the run directory '{run}'; give `best` or "
            f"the name of a checkpoint in {run / rd.CHECKPOINTS_DIR}"
        )
