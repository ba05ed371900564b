"""Offline `evaluate` module: ROUGE-1/2/L/Lsum F-measures via rouge_score, in [0, 1] as
rouge_score reports them (multiply by 100 yourself for paper-style numbers; the scale of every
metric: finetune/metrics/__init__.py).

Loaded by path (``evaluate.load(".../rouge")``), so it never touches the Hub.
Imports must stay at column 0: evaluate scans this file's import lines.
"""

import re

import numpy as np
from rouge_score import rouge_scorer
from finetune.metrics.common import citation, metric_class
from finetune.metrics.shapes import text_features

_DESCRIPTION = """
ROUGE (Lin, 2004) compares a generated summary with reference summaries:
rouge1/rouge2 by unigram/bigram overlap, rougeL by the longest common
subsequence over the whole text, rougeLsum by the summary-level (union) LCS
over sentences. Each score is the F-measure of precision and recall, computed
by Google's rouge_score package, with Porter stemming on by default.

rougeLsum needs one sentence per line. Model outputs rarely contain newlines,
and nltk's punkt data is not available offline, so sentences are split with a
small regex splitter (break after . ! ? followed by whitespace, except after a
few common abbreviations and single-letter initials); existing newlines are
kept. This only changes rougeLsum: the rouge_score tokenizer treats a newline
like any other separator.

With several references per example, each ROUGE type takes the best-scoring
reference for that example (rouge_score's `score_multi`, chosen per type by
F-measure); the per-example scores are then averaged over the corpus (a plain
mean, not the bootstrap median of rouge_score's BootstrapAggregator).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): one generated text per example.
    references (`list` of `str`, or `list` of `list` of `str`): the reference
        (or references) of each example; with lists, the number of references
        may differ between examples.
    rouge_types (`list` of `str`, defaults to
        `["rouge1", "rouge2", "rougeL", "rougeLsum"]`): any of `rouge1`..
        `rouge9`, `rougeL`, `rougeLsum`.
    use_stemmer (`bool`, defaults to `True`): Porter-stem tokens longer than
        3 characters before matching.
    split_sentences (`bool`, defaults to `True`): insert newlines between
        sentences before scoring (affects rougeLsum only).
    use_aggregator (`bool`, defaults to `True`): return the corpus mean; if
        `False`, return the list of per-example F-measures for each type.
    tokenizer (callable `str -> list[str]`, optional): replaces rouge_score's
        default tokenizer, which keeps only [a-z0-9] and therefore scores
        non-Latin scripts as empty. `use_stemmer` is ignored when given.

Returns:
    One key per entry of `rouge_types` (by default rouge1, rouge2, rougeL,
    rougeLsum), each a `float` in [0, 1] (or a `list` of them when
    `use_aggregator=False`).

Examples:
    >>> metric = finetune.metrics.load_metric("rouge")
    >>> metric.compute(predictions=["the cat sat"], references=["the cat sat"])
    {'rouge1': 1.0, 'rouge2': 1.0, 'rougeL': 1.0, 'rougeLsum': 1.0}
"""

_CITATION = citation("lin-2004-rouge")

DEFAULT_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

# A sentence ends at a run of . ! ? (optionally followed by closing quotes or
# brackets) that is followed by whitespace.
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u2019\u201d)\]]*\s+")
# Words after which a period usually does not end a sentence. Deliberately
# short: a wrong split only moves rougeLsum slightly, and a long list would
# pretend to a precision a regex splitter cannot have.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "no", "fig", "approx"}
)


def add_sentence_newlines(text):
    """Return `text` with one sentence per line (existing newlines are kept)."""
    sentences = []
    for line in text.split("\n"):
        start = 0
        for match in _SENTENCE_END.finditer(line):
            if match.group().startswith("."):
                before = line[start : match.start()].split()
                word = before[-1].lower() if before else ""
                if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                    continue
            sentences.append(line[start : match.end()].strip())
            start = match.end()
        sentences.append(line[start:].strip())
    return "\n".join(s for s in sentences if s)


class _CallableTokenizer:
    """Adapts a plain callable to the `.tokenize()` interface RougeScorer expects."""

    def __init__(self, fn):
        self._fn = fn

    def tokenize(self, text):
        return self._fn(text)


def _compute(predictions, references, rouge_types=None, use_stemmer=True, split_sentences=True,
             use_aggregator=True, tokenizer=None):
    rouge_types = list(rouge_types) if rouge_types is not None else list(DEFAULT_ROUGE_TYPES)
    scorer = rouge_scorer.RougeScorer(
        rouge_types=rouge_types,
        use_stemmer=use_stemmer,
        tokenizer=_CallableTokenizer(tokenizer) if tokenizer is not None else None,
    )
    # Newline-splitting every text is safe for all types: only rougeLsum
    # looks at newlines, the others tokenize them away.
    prepare = add_sentence_newlines if split_sentences else str

    per_example = {t: [] for t in rouge_types}
    for i, (pred, refs) in enumerate(zip(predictions, references)):
        pred = prepare(pred)
        if isinstance(refs, str):
            scores = scorer.score(prepare(refs), pred)
        else:
            if len(refs) == 0:
                raise ValueError(f"rouge: example {i} has no reference")
            # Best reference per rouge type, picked by F-measure.
            scores = scorer.score_multi([prepare(r) for r in refs], pred)
        for t in rouge_types:
            per_example[t].append(float(scores[t].fmeasure))

    if not use_aggregator:
        return per_example
    # An empty eval set scores 0 rather than numpy's nan-with-warning.
    return {t: float(np.mean(v)) if v else 0.0 for t, v in per_example.items()}


Rouge = metric_class(
    "rouge", _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, text_features(), _compute, allow_empty=True,
    codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
    reference_urls=["https://aclanthology.org/W04-1013"],
)
