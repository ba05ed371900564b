"""Summarization: a text (or a list of its sentences) in, a summary out, scored with ROUGE."""

from __future__ import annotations

from finetune.tasks.specs.source_target import SourceTargetSpec


class SummarizationSpec(SourceTargetSpec):
    names = ("summarization",)
    metrics = ("rougeL", "rouge1", "rouge2", "rougeLsum")
    default_template = "Summarize the text in one sentence.\nText: {source}\nSummary: "
    target_key = "data.summary_column"
    source_lists = True

    def compute_metrics(self, predictions, references):
        from finetune.metrics import load_metric

        scores = load_metric("rouge").compute(predictions=predictions, references=references)
        return {k: float(scores[k]) for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
