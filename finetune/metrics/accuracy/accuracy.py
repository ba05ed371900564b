"""Offline `evaluate` module: classification accuracy.

Scale convention used by all finetune metrics: accuracy and F1 lie in [0, 1];
BLEU and chrF use sacrebleu's 0-100 scale; ROUGE lies in [0, 1] as rouge_score
reports it.

Loaded by path (``evaluate.load(".../accuracy")``), so it never touches the Hub.
Imports must stay at column 0: evaluate scans this file's import lines to check
that the libraries are installed before it copies the script into its module
cache.
"""

import evaluate
from sklearn.metrics import accuracy_score
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

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V.
          and Thirion, B. and Grisel, O. and Blondel, M. and Prettenhofer, P.
          and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
          Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=label_features(),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        if len(predictions) == 0:
            # sklearn returns nan with a warning here; an explicit error is
            # easier to trace back to an empty eval split.
            raise ValueError("accuracy: got no predictions to score")
        value = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        # Plain float so the result is JSON-serialisable (numpy scalars are not).
        return {"accuracy": float(value)}
