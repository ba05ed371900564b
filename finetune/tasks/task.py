"""What differs between tasks, answered by each task module; the training loop asks, never
branches on task names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.config import DataSection, EvalSection
from finetune.errors import ConfigError


class Task:
    kind: str  # "classification" | "seq2seq" | "causal": picks peft's task type
    auto_class: str  # transformers Auto class that builds the model
    default_metric: str  # picks the best checkpoint unless eval.best_metric says otherwise

    def __init__(self, data: DataSection, eval: EvalSection):
        self.data = data
        self.eval_cfg = eval

    @property
    def best_metric(self) -> str:
        return self.eval_cfg.best_metric or self.default_metric

    def check_split(self, ds, split: str) -> None:
        """Refuse a split whose columns the task cannot read (run on every split as read)."""

    def fit_to_data(self, splits) -> None:
        """Learn what the data decides (label set) before the model is built."""

    def restore(self, model_config) -> None:
        """Recover what fit_to_data learnt from a saved model's config (for `finetune eval`)."""

    def model_kwargs(self) -> dict[str, Any]:
        """Extra config fields for the model (num_labels, id2label...)."""
        return {}

    def prepare_tokenizer(self, tokenizer) -> None:
        """Fix what the task needs of the tokenizer (pad token, padding side)."""

    def encode(self, ds, split: str, tokenizer):
        raise NotImplementedError

    def collator(self, tokenizer, pad_to_multiple_of: int | None):
        raise NotImplementedError

    def evaluate(self, model, loader, raw, accelerator, tokenizer) -> tuple[dict[str, float], list[dict]]:
        """Metrics on one split and one prediction record per example (main process only)."""
        raise NotImplementedError

    def predict(self, model, tokenizer, texts: list[str]) -> list[dict]:
        """One JSON-ready answer per input text, for `finetune predict`."""
        raise ConfigError(f"`finetune predict` is not available for {self.kind} tasks yet")

    def write_figures(self, run_dir: Path, split: str, records: list[dict]) -> list[Path]:
        """Pictures of an evaluation (confusion matrix...) next to eval_<split>.json."""
        return []

    def save_alongside(self, model, tokenizer, directory: Path) -> None:
        """Extra files a saved model needs to behave as it did in evaluation."""
