"""Offline `evaluate` module: corpus chrF / chrF++ computed by sacrebleu. `score` is on
sacrebleu's 0-100 scale (the scale of every metric: finetune/metrics/__init__.py).

Loaded by path (``evaluate.load(".../chrf")``), so it never touches the Hub.
Imports must stay at column 0: evaluate scans this file's import lines.
"""

from sacrebleu.metrics import CHRF
from finetune.metrics.common import citation, metric_class
from finetune.metrics.shapes import reference_streams, text_features

_DESCRIPTION = """
chrF (Popovic, 2015) is an F-score over character n-grams (up to 6 by default)
with recall weighted beta=2 times as much as precision; chrF++ (Popovic, 2017)
adds word n-grams (`word_order=2`). It is less sensitive to tokenisation and
morphology than BLEU. Computed at corpus level by sacrebleu; with several
references, sacrebleu keeps, per example, the reference with the best score.
Examples may have different numbers of references.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): one hypothesis per example.
    references (`list` of `list` of `str`, or `list` of `str`): the references
        of each example; the number of references may differ between examples.
    char_order (`int`, defaults to 6): maximum character n-gram order.
    word_order (`int`, defaults to 0): maximum word n-gram order; 2 gives chrF++.
    beta (`int`, defaults to 2): recall weight.
    lowercase (`bool`, defaults to `False`): case-insensitive scoring.
    whitespace (`bool`, defaults to `False`): keep whitespace in character
        n-grams.
    eps_smoothing (`bool`, defaults to `False`): use the epsilon smoothing of
        the reference chrF++.py / NLTK / Moses instead of sacrebleu's default.

Returns:
    score (`float`): corpus chrF, 0-100.
    char_order (`int`), word_order (`int`), beta (`int`): the settings used.

Examples:
    >>> metric = finetune.metrics.load_metric("chrf")
    >>> metric.compute(predictions=["the cat sat"], references=[["the cat sat"]])["score"]
    100.0
"""

_CITATION = citation("popovic-2015-chrf", "popovic-2017-chrf", "post-2018-call")


def _compute(predictions, references, char_order=CHRF.CHAR_ORDER, word_order=CHRF.WORD_ORDER, beta=CHRF.BETA,
             lowercase=False, whitespace=False, eps_smoothing=False):
    chrf = CHRF(
        char_order=char_order,
        word_order=word_order,
        beta=beta,
        lowercase=lowercase,
        whitespace=whitespace,
        eps_smoothing=eps_smoothing,
    )
    result = chrf.corpus_score(list(predictions), reference_streams(references))
    return {
        "score": float(result.score),
        "char_order": int(result.char_order),
        "word_order": int(result.word_order),
        "beta": int(result.beta),
    }


Chrf = metric_class(
    "chrf", _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, text_features(), _compute,
    homepage="https://github.com/mjpost/sacrebleu",
    codebase_urls=["https://github.com/mjpost/sacrebleu"],
    reference_urls=["https://github.com/m-popovic/chrF"],
)
