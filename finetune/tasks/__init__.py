"""One module per task kind; `get_task` picks it by the config's `task` name."""

from __future__ import annotations

from finetune.config import RunConfig
from finetune.tasks.base import Task


def get_task(cfg: RunConfig) -> Task:
    if cfg.task in ("sentiment", "classification"):
        from finetune.tasks.classification import ClassificationTask

        return ClassificationTask(cfg.data, cfg.eval)
    raise NotImplementedError(f"task '{cfg.task}' is not available yet")
