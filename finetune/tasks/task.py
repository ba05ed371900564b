"""A task is a spec (`specs/`: which columns, how to read them, which metrics) run on an
architecture (`architectures/`: how rows become tokens, batches become answers). The rest of the
package asks the task; neither axis branches on the other's names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.configuration.config import EvalSection


class Task:
    def __init__(self, spec, arch, eval: EvalSection):
        self.spec = spec
        self.arch = arch
        self.eval_cfg = eval

    # ------------------------------------------------------------------ what it is
    @property
    def kind(self) -> str:
        """"classification" | "seq2seq" | "causal": picks peft's task type."""
        return self.arch.kind

    @property
    def auto_class(self) -> str:
        """The transformers Auto class that builds the model."""
        return self.arch.auto_class

    @property
    def generates(self) -> bool:
        return self.spec.generates

    @property
    def default_metric(self) -> str:
        return self.spec.metrics[0]

    @property
    def best_metric(self) -> str:
        return self.eval_cfg.best_metric or self.default_metric

    def longest_input(self) -> int:
        return self.arch.longest_input(self.spec.data)

    # ------------------------------------------------------------------ data and model
    def check_split(self, ds, split: str) -> None:
        """Refuse a split whose columns the task cannot read (run on every split as read)."""
        self.spec.check_split(ds, split)

    def fit_to_data(self, splits) -> None:
        """Learn what the data decides (label set) before the model is built."""
        self.spec.fit_to_data(splits)

    def restore(self, model_config) -> None:
        """Recover what fit_to_data learnt from a saved model's config (for `finetune eval`)."""
        self.spec.restore(model_config)

    def model_kwargs(self) -> dict[str, Any]:
        """Extra config fields for the model (num_labels, id2label...)."""
        return self.spec.model_kwargs()

    def corpus(self, ds, rows_per_read: int = 1000):
        """The split's texts, read in slices, for training a tokenizer on them."""
        for start in range(0, len(ds), rows_per_read):
            yield from self.spec.texts(ds[start : start + rows_per_read])

    def prepare_tokenizer(self, tokenizer) -> None:
        self.arch.prepare_tokenizer(tokenizer)

    def encode(self, ds, split: str, tokenizer):
        return self.arch.encode(self.spec, ds, split, tokenizer)

    def collator(self, tokenizer, pad_to_multiple_of: int | None):
        return self.arch.collator(tokenizer, pad_to_multiple_of)

    def save_alongside(self, model, tokenizer, directory: Path) -> None:
        """Extra files a saved model needs to behave as it did in evaluation."""
        self.arch.save_alongside(model, tokenizer, directory)

    # ------------------------------------------------------------------ inference pieces
    def scored_batch(self, model, batch) -> list[dict]:
        """Rows of one teacher-forced (labelled) batch of the evaluation loader."""
        return self.arch.scored_batch(model, batch)

    def sources(self, raw) -> list[str]:
        """The inputs of a split's rows, as the model should read them."""
        return self.spec.sources(raw[:])

    def user_inputs(self, texts: list[str]) -> list[str]:
        """Texts a user gave `predict` or `chat`, as the model read its training inputs."""
        return self.spec.user_inputs(texts) if self.generates else texts

    def prompt_rows(self, texts: list[str], tokenizer) -> list[dict]:
        return self.arch.prompt_rows(self.spec, texts, tokenizer)

    def prompt_collator(self, tokenizer, model_config):
        return self.arch.prompt_collator(self.spec, tokenizer, model_config)

    def answer_batch(self, model, batch, tokenizer) -> list[dict]:
        """Rows of one batch of prompts: generated text, or class probabilities."""
        return self.arch.answer_batch(model, batch, tokenizer)

    def score(self, scored: list[dict], answered: list[dict], raw) -> tuple[dict[str, float], list[dict]]:
        """Metrics on one split and one prediction record per example, rows in data order."""
        return self.spec.score(scored, answered, raw)

    def answers(self, texts: list[str], rows: list[dict]) -> list[dict]:
        """One JSON-ready answer per input text, for `finetune predict`."""
        return self.spec.answers(texts, rows)

    def write_figures(self, run_dir: Path, split: str, records: list[dict], weights: str | None = None) -> list[Path]:
        """Pictures of an evaluation (confusion matrix...) next to eval_<split>.json."""
        return self.spec.write_figures(run_dir, split, records, weights)
