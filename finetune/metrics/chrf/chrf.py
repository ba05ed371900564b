"""Offline `evaluate` module: corpus chrF / chrF++ computed by sacrebleu.

Scale convention used by all finetune metrics: accuracy and F1 lie in [0, 1];
BLEU and chrF use sacrebleu's 0-100 scale; ROUGE lies in [0, 1] as rouge_score
reports it. So `score` here is 0-100.

Loaded by path (``evaluate.load(".../chrf")``), so it never touches the Hub.
Imports must stay at column 0: evaluate scans this file's import lines.
"""

import evaluate
from sacrebleu.metrics import CHRF
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

_CITATION = """
@inproceedings{popovic-2015-chrf,
    title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
    author = "Popovi{\\'c}, Maja",
    booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
    year = "2015",
    url = "https://aclanthology.org/W15-3049",
    pages = "392--395",
}
@inproceedings{popovic-2017-chrf,
    title = "chr{F}++: words helping character n-grams",
    author = "Popovi{\\'c}, Maja",
    booktitle = "Proceedings of the Second Conference on Machine Translation",
    year = "2017",
    url = "https://aclanthology.org/W17-4770",
    pages = "612--618",
}
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    url = "https://www.aclweb.org/anthology/W18-6319",
    pages = "186--191",
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            homepage="https://github.com/mjpost/sacrebleu",
            features=text_features(),
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
            reference_urls=["https://github.com/m-popovic/chrF"],
        )

    def _compute(
        self,
        predictions,
        references,
        char_order=CHRF.CHAR_ORDER,
        word_order=CHRF.WORD_ORDER,
        beta=CHRF.BETA,
        lowercase=False,
        whitespace=False,
        eps_smoothing=False,
    ):
        if len(predictions) == 0:
            raise ValueError("chrf: got no predictions to score")
        if len(predictions) != len(references):
            raise ValueError(f"chrf: {len(predictions)} predictions but {len(references)} references")
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
