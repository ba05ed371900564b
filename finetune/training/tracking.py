"""metrics.jsonl (always) plus the trackers named in `training.report_to` (TensorBoard, W&B):
one JSON object per logged training step or evaluation, the same numbers sent to each."""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.errors import ConfigError

_NOT_SCALARS = {"type", "step", "epoch", "time", "split"}
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def check_trackers(report_to: list[str]) -> None:
    """Fail before any work when a configured tracker's package is missing."""
    for name in report_to:
        package = _PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"training.report_to includes '{name}' but the '{package}' package is not "
                f"installed; pip install {package}, or remove '{name}' from training.report_to"
            )


class MetricsLog:
    def __init__(self, path: Path, enabled: bool, trackers: list | None = None):
        self.path = path
        self.enabled = enabled
        self.trackers = trackers or []
        self.start = time.time()

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {k: _clean(v) for k, v in record.items()}
        record.setdefault("time", round(time.time() - self.start, 3))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        scalars = {
            f"{record['type']}/{k}": v for k, v in record.items()
            if k not in _NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        for tracker in self.trackers:
            tracker.log(scalars, record["step"])

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []


def make_trackers(report_to: list[str], run_dir: Path, run_config: dict) -> list:
    """Build on the main process only; the other ranks log nothing."""
    builders = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker}
    return [builders[name](run_dir, run_config) for name in report_to]


class TensorBoardTracker:
    def __init__(self, run_dir: Path, run_config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / rd.TENSORBOARD_DIR))
        self.writer.add_text("config", "```\n" + json.dumps(run_config, indent=2) + "\n```")

    def log(self, scalars: dict, step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()  # a run that crashes still leaves readable curves

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """Project from WANDB_PROJECT (default `finetune`); credentials are wandb's own business
    (`wandb login` or WANDB_API_KEY), never read or stored by us."""

    def __init__(self, run_dir: Path, run_config: dict):
        import os

        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "finetune"), name=run_dir.name,
            dir=str(run_dir), config=run_config,
        )

    def log(self, scalars: dict, step: int) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    if isinstance(value, float):
        return round(value, 6)
    return value


def read_metrics(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
