"""Offline `evaluate` module: classification accuracy, in [0, 1] (the scale of every metric:
finetune/metrics/__init__.py).

Loaded by path (``evaluate.load(".../accuracy")``), so it never touches the Hub.
Imports must stay at column 0: evaluate scans this file's import lines to check
that the libraries are installed before it copies the script into its module
cache.
"""

from sklearn.metrics import accuracy_score
from finetune.metrics.common import citation, metric_class
from finetune.metrics.shapes import label_features

_DESCRIPTION = """
Accuracy is the fraction of predictions that equal their reference label:
(number of correct predictions) / (number of predictions). Returned in [0, 1]
(or as a raw count of correct predictions when `normalize=False`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): gold class ids, same length as `predictions`.
    normalize (`bool`, defaults to `True`): return the fraction of correct
        predictions; if `False`, return the number of correct predictions.
    sample_weight (`list` of `float`, optional): per-example weights.

Returns:
    accuracy (`float`): in [0, 1] when `normalize=True`.

Examples:
    >>> metric = finetune.metrics.load_metric("accuracy")
    >>> metric.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1])
    {'accuracy': 0.75}
"""

_CITATION = citation("scikit-learn")


def _compute(predictions, references, normalize=True, sample_weight=None):
    value = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
    # Plain float so the result is JSON-serialisable (numpy scalars are not).
    return {"accuracy": float(value)}


Accuracy = metric_class(
    "accuracy", _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, label_features(), _compute,
    reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
)
