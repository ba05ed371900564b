"""What translation and summarization share: a source text in, a target text out, read from
the data's columns, and records of what was generated. `translation.py` and `summarization.py`
hold what differs (columns, metrics, default prompt)."""

from __future__ import annotations

from typing import Any

from finetune.data.column_checks import check_text
from finetune.configuration.config import DataSection
from finetune.data.splits import require_columns, source_name
from finetune.data.text_cut import CHARS_PER_TOKEN, cut


class SourceTargetSpec:
    names: tuple[str, ...]  # the config's `task` values; the first is the one shown
    generates = True
    metrics: tuple[str, ...]  # the first picks the best checkpoint unless eval.best_metric says otherwise
    default_template: str  # decoder-only prompt unless data.prompt_template says otherwise
    target_key: str  # the config key naming the target column
    source_lists = False  # whether a source may be a list of sentences

    def __init__(self, data: DataSection):
        self.data = data

    @property
    def target_column(self) -> str:
        return getattr(self.data, self.target_key.removeprefix("data."))

    def columns(self) -> list[str]:
        return [self.data.text_column, self.target_column]

    def check_columns(self, ds, split: str) -> None:
        require_columns(ds, self.columns(), self.data, split)

    def check_split(self, ds, split: str) -> None:
        """Sources and targets are text; targets (and summarization sources) may be lists of
        strings: several references, or a source split into sentences."""
        self.check_columns(ds, split)
        d = self.data
        where = source_name(d, split)
        check_text(ds, d.text_column, where, "data.text_column", lists=self.source_lists)
        check_text(ds, self.target_column, where, self.target_key, lists=True)

    # Nothing to learn from the data or to restore: the vocabulary is the model's.
    def fit_to_data(self, splits) -> None:
        pass

    def restore(self, model_config) -> None:
        pass

    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def languages(self) -> tuple[str, str]:
        """The names a prompt template calls {source_lang} and {target_lang}."""
        d = self.data
        return d.text_column, d.target_column or d.summary_column or "target"

    def template(self) -> str:
        return self.data.prompt_template or self.default_template

    def source_values(self, batch: dict[str, list]) -> list:
        return batch[self.data.text_column]

    def target_values(self, batch: dict[str, list]) -> list:
        return batch[self.target_column]

    def sources(self, batch: dict[str, list]) -> list[str]:
        return self.model_inputs([_as_text(t) for t in self.source_values(batch)])

    def model_inputs(self, texts: list[str]) -> list[str]:
        """Texts as the model read its training sources: with `data.source_prefix` (T5's task
        prefix), which a user typing into `predict` or `chat` leaves out."""
        return [self.data.source_prefix + t for t in texts]

    def user_inputs(self, texts: list[str]) -> list[str]:
        """What a user gave `predict` or `chat`, as evaluation gives it to the model: with the
        prefix, added unless the text starts with it already (a source copied from
        predictions_<split>.jsonl, whose records hold it), so it is never there twice."""
        prefix = self.data.source_prefix
        return [t if prefix and t.startswith(prefix) else prefix + t for t in texts]

    def references(self, batch: dict[str, list]) -> list[list[str]]:
        """Every reference of each row: a column of lists gives several (SciTLDR dev)."""
        return [[_as_text(r) for r in v] if isinstance(v, (list, tuple)) else [_as_text(v)]
                for v in self.target_values(batch)]

    def texts(self, batch: dict[str, list]) -> list[str]:
        """What a tokenizer learnt from the data must read well: sources and targets (as far as
        the model will read them)."""
        d = self.data
        return cut(self.sources(batch), d.max_source_length) + cut(self.targets(batch), d.max_target_length)

    def targets(self, batch: dict[str, list]) -> list[str]:
        """The training target: the first reference (train splits hold one)."""
        return [refs[0] if refs else "" for refs in self.references(batch)]

    def cache_key(self) -> dict:
        """What of the data changes the tokenized rows (the architecture adds its own)."""
        d = self.data
        return {
            "lengths": [d.max_source_length, d.max_target_length],
            "columns": self.columns(),
            "langs": [d.source_lang, d.target_lang],
            "prefix": d.source_prefix,
            "cut": CHARS_PER_TOKEN,  # texts are cut to lengths × this many characters first
        }

    def compute_metrics(self, predictions: list[str], references: list[list[str]]) -> dict[str, float]:
        raise NotImplementedError

    def score(self, scored: list[dict], answered: list[dict], raw):
        """Metrics of the generated text against the references (in data order), the
        teacher-forced loss, and one record per example."""
        texts = {r["index"]: r for r in answered}  # keyed by row: any duplicate counts once
        order = sorted(texts)
        predictions = [texts[i]["generated"] for i in order]
        rows = raw.select(order)[:]
        references = self.references(rows)
        metrics = self.compute_metrics(predictions, references)
        metrics["gen_len"] = sum(texts[i]["length"] for i in order) / max(len(order), 1)
        if scored:  # per target token over the whole split (rows hold their sums, generator.py)
            metrics["loss"] = sum(r["loss_sum"] for r in scored) / max(sum(r["tokens"] for r in scored), 1)
        metrics["samples"] = len(predictions)
        records = [
            {"source": s, "references": r, "generated": p}
            for s, r, p in zip(self.sources(rows), references, predictions)
        ]
        return metrics, records

    def answers(self, texts: list[str], rows: list[dict]) -> list[dict]:
        """`finetune predict`: the generated text for each input."""
        return [{"source": t, "generated": r["generated"]} for t, r in zip(texts, rows)]

    def write_figures(self, run_dir, split: str, records: list[dict], weights: str | None = None):
        return []


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):  # SciTLDR sources are lists of sentences
        return " ".join(_as_text(v) for v in value)
    return str(value)
