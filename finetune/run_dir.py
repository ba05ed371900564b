"""The run directory: what goes where, and never overwriting a finished run by accident."""

from __future__ import annotations

import shutil
from pathlib import Path

from finetune.errors import RunDirError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
MODEL_DIR = "model"  # final model (full fine-tune) or adapter, with the tokenizer
BEST_DIR = "best"  # best model by the chosen metric
CHECKPOINTS_DIR = "checkpoints"


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuse a non-empty directory unless --overwrite; called before any work is done."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"training.output_dir '{path}': is a file, not a directory; choose another path")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise RunDirError(
            f"training.output_dir '{path}': already holds a run; pass --overwrite to replace it, "
            "--resume to continue it, or set training.output_dir to a new directory"
        )


def clear(path: Path) -> None:
    """Empty the directory (for --overwrite), called only once the new run has set up cleanly."""
    if path.is_dir():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def require_run(path: Path) -> Path:
    """A directory written by `finetune train` (for eval, predict, merge...)."""
    if not path.is_dir():
        raise RunDirError(f"run directory '{path}' not found; pass the training.output_dir of a run")
    if not (path / CONFIG_FILE).is_file():
        raise RunDirError(f"'{path}' is not a run directory: it has no {CONFIG_FILE}")
    return path


def model_dir(run: Path, checkpoint: str | None = None) -> Path:
    """The saved model to load: the final one, `best`, or a named checkpoint directory."""
    target = run / (checkpoint or MODEL_DIR)
    if checkpoint and not target.is_dir():
        target = run / CHECKPOINTS_DIR / checkpoint
    if not target.is_dir():
        what = f"checkpoint '{checkpoint}'" if checkpoint else "final model"
        raise RunDirError(
            f"'{run}': no {what} found ({target} is missing); was the training run finished?"
        )
    return target
