"""Offline `evaluate` module: F1 score (macro-averaged by default), in [0, 1] (the scale of
every metric: finetune/metrics/__init__.py).

Loaded by path (``evaluate.load(".../f1")``), so it never touches the Hub.
Imports must stay at column 0: evaluate scans this file's import lines.
"""

import numpy as np
from sklearn.metrics import f1_score
from finetune.metrics.common import citation, metric_class
from finetune.metrics.shapes import label_features

_DESCRIPTION = """
F1 is the harmonic mean of precision and recall: 2 * P * R / (P + R).
With more than two classes the per-class scores are averaged; this module
defaults to the unweighted (macro) mean so that rare classes count as much as
frequent ones, which is what classification fine-tuning usually wants to see
next to accuracy. Returned in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): gold class ids, same length as `predictions`.
    average (`str` or `None`, defaults to `"macro"`): one of `"macro"`,
        `"micro"`, `"weighted"`, `"binary"` (score of `pos_label` only), or
        `None` to get one score per label.
    labels (`list` of `int`, optional): labels to include when averaging;
        defaults to every label seen in predictions or references.
    pos_label (`int`, defaults to 1): the positive class when `average="binary"`.
    sample_weight (`list` of `float`, optional): per-example weights.
    zero_division (`0`, `1`, `"warn"` or `nan`, defaults to 0): value for a
        class that has no predicted and no gold examples.

Returns:
    f1 (`float`, or `list` of `float` when `average=None`): in [0, 1].

Examples:
    >>> metric = finetune.metrics.load_metric("f1")
    >>> metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])
    {'f1': 0.7777777777777777}
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 1], average="binary")
    {'f1': 0.5}
"""

_CITATION = citation("scikit-learn")


def _compute(predictions, references, average="macro", labels=None, pos_label=1, sample_weight=None,
             zero_division=0):
    # zero_division=0 gives the same number as sklearn's "warn" default
    # but keeps eval logs free of UndefinedMetricWarning spam when a small
    # eval batch misses a class.
    value = f1_score(
        references,
        predictions,
        labels=labels,
        pos_label=pos_label,
        average=average,
        sample_weight=sample_weight,
        zero_division=zero_division,
    )
    # average=None yields one score per label; lists/floats keep the
    # result JSON-serialisable for the trainer's metric logging.
    if np.ndim(value) > 0:
        return {"f1": [float(v) for v in np.asarray(value)]}
    return {"f1": float(value)}


F1 = metric_class(
    "f1", _DESCRIPTION, _KWARGS_DESCRIPTION, _CITATION, label_features(), _compute,
    reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
)
