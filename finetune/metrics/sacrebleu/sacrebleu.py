"""Offline `evaluate` module: corpus BLEU computed by the sacrebleu package. `score` is on
sacrebleu's 0-100 scale, like the number printed in papers (the scale of every metric:
finetune/metrics/__init__.py).

Loaded by path (``evaluate.load(".../sacrebleu")``), so it never touches the
Hub. Imports must stay at column 0: evaluate scans this file's import lines.
The file shares its name with the `sacrebleu` package; that is harmless because
evaluate imports it as ``evaluate_modules.metrics.sacrebleu.<hash>.sacrebleu``
and the ``from sacrebleu...`` import below is absolute.
"""

from sacrebleu.metrics import BLEU
from finetune.metrics.common import citation, metric_class
from finetune.metrics.shapes import reference_streams, text_features

_DESCRIPTION = """
BLEU (Papineni et al., 2002) as computed by SacreBLEU (Post, 2018): n-gram
precisions up to 4-grams, clipped by the references, aggregated over the whole
corpus, times a brevity penalty. SacreBLEU fixes the tokenisation (13a by
default) so scores are comparable across papers. Inputs must be detokenised
text. Examples may have different numbers of references.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): one detokenised hypothesis per example.
    references (`list` of `list` of `str`, or `list` of `str`): the references
        of each example; the number of references may differ between examples.
    smooth_method (`str`, defaults to `"exp"`): `"none"`, `"floor"`, `"add-k"`
        or `"exp"`.
    smooth_value (`float`, optional): value for `"floor"` / `"add-k"`.
    tokenize (`str`, optional): sacrebleu tokenizer name (`"13a"`, `"intl"`,
        `"zh"`, `"ja-mecab"`, `"char"`, `"none"`, ...); sacrebleu's default
        (13a) when not given.
    lowercase (`bool`, defaults to `False`): case-insensitive BLEU.
    force (`bool`, defaults to `False`): allow already-tokenised input.
    use_effective_order (`bool`, defaults to `False`): ignore n-gram orders
        with no matches (meant for sentence-level BLEU).

Returns:
    score (`float`): corpus BLEU, 0-100.
    counts (`list` of `int`): matched n-grams per order (1..4).
    totals (`list` of `int`): hypothesis n-grams per order.
    precisions (`list` of `float`): n-gram precisions per order, 0-100.
    bp (`float`): brevity penalty, 0-1.
    sys_len (`int`): hypothesis length in tokens.
    ref_len (`int`): effective (closest) reference length in tokens.

Examples:
    >>> metric = finetune.metrics.load_metric("sacrebleu")
    >>> out = metric.compute(predictions=["the cat sat on the mat"],
    ...                      references=[["the cat sat on the mat", "a cat sat"]])
    >>> round(out["score"], 1)
    100.0
"""

_CITATION = citation("papineni-etal-2002-bleu", "post-2018-call")


def _compute(predictions, references, smooth_method="exp", smooth_value=None, tokenize=None, lowercase=False,
             force=False, use_effective_order=False):
    bleu = BLEU(
        lowercase=lowercase,
        force=force,
        tokenize=tokenize,
        smooth_method=smooth_method,
        smooth_value=smooth_value,
        effective_order=use_effective_order,
    )
    result = bleu.corpus_score(list(predictions), reference_streams(references))
    # Plain Python types so the dict can go straight into JSON logs.
    return {
        "score": float(result.score),
        "counts": [int(c) for c in result.counts],
        "totals": [int(t) for t in result.totals],
        "precisions": [float(p) for p in result.precisions],
        "bp": float(result.bp),
        "sys_len": int(result.sys_len),
        "ref_len": int(result.ref_len),
    }


Sacrebleu = metric_class(
    "sacrebleu", _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, text_features(), _compute,
    homepage="https://github.com/mjpost/sacrebleu",
    codebase_urls=["https://github.com/mjpost/sacrebleu"],
    reference_urls=["https://github.com/mjpost/sacrebleu"],
)
