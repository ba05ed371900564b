"""What the commands that read a run or a config share: loading it (offline unless the Hub
answers), `--resume` without a value, and printing a result from one process only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer


def load_run(run_dir: Path, overrides: list[str], checkpoint: str | None = None):
    from finetune.storage import run_dir as rd
    from finetune.configuration.checkpoint_flag import check_checkpoint_flag
    from finetune.configuration.loading import load_config
    from finetune.model.hub_reach import offline_unless_reachable

    run = rd.require_run(run_dir)
    check_checkpoint_flag(run, checkpoint)
    cfg = load_config(run / rd.CONFIG_FILE, overrides)
    offline_unless_reachable([cfg.model.name_or_path, cfg.data.dataset])
    return run, cfg


def load_model_config(config: Path, overrides: list[str]):
    from finetune.configuration.loading import load_config
    from finetune.model.hub_reach import offline_unless_reachable

    cfg = load_config(config, overrides)
    offline_unless_reachable([cfg.model.name_or_path, cfg.data.dataset])
    return cfg


def _is_main_process() -> bool:
    """Under torchrun / accelerate launch every rank runs the command; one of them reports."""
    return os.environ.get("RANK", "0") == "0"


def print_result(headline: str, metrics: dict) -> None:
    if not _is_main_process():
        return
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    typer.echo(f"{headline}\n{json.dumps(shown)}")


def bare_resume(argv: list[str]) -> list[str]:
    """`--resume` with no value means the newest checkpoint. Click has no optional-value
    options, so a bare one (last, or followed by an option or a key=value override) becomes
    `--resume=latest`."""
    out = list(argv)
    for i, arg in enumerate(out):
        following = out[i + 1] if i + 1 < len(out) else None
        if arg == "--resume" and (
            following is None or following.startswith("-") or ("=" in following and not Path(following).exists())
        ):
            out[i] = "--resume=latest"
    return out
