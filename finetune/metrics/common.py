"""What every bundled evaluate module shares: the evaluate.Metric class around its compute
function (docstring, MetricInfo, input checks) and its citations, read from citations.bib.

The modules import this absolutely (`from finetune.metrics.common import ...`), as they do
shapes.py: evaluate copies each module file into its cache on its own, so neither a relative
import nor a file beside the module would resolve there.
"""

import re
from pathlib import Path

import evaluate

_BIBLIOGRAPHY = Path(__file__).resolve().parent / "citations.bib"


def citation(*keys):
    """The BibTeX entries named by `keys`, in that order."""
    text = _BIBLIOGRAPHY.read_text(encoding="utf-8")
    entries = {re.match(r"@\w+\{([^,]+),", e).group(1): e.strip() for e in re.split(r"(?m)^(?=@)", text) if e.strip()}
    return "\n" + "".join(entries[key] + "\n" for key in keys)


def metric_class(name, description, inputs_description, citation, features, compute, allow_empty=False, **urls):
    """The module's evaluate.Metric class: `compute(predictions, references, **options)`
    returns the scores. evaluate names the metric after the class (`name`, capitalised) and
    takes the first Metric class in the module's namespace, so a module assigns this result
    and imports no class. `urls`: homepage, codebase_urls, reference_urls of MetricInfo."""

    @evaluate.utils.file_utils.add_start_docstrings(description, inputs_description)
    class Metric(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description=description,
                citation=citation,
                inputs_description=inputs_description,
                features=features,
                **urls,
            )

        def _compute(self, predictions, references, **options):
            _check_inputs(name, predictions, references, allow_empty)
            return compute(predictions, references, **options)

    Metric.__name__ = Metric.__qualname__ = name.capitalize()
    Metric.__module__ = compute.__module__  # the metric's own module, where its helpers live
    return Metric


def _check_inputs(name, predictions, references, allow_empty):
    """Fail naming the metric where its library would fail obscurely (an IndexError deep in
    sacrebleu) or return nan with a warning (sklearn), which hides an empty eval split."""
    if not allow_empty and len(predictions) == 0:
        raise ValueError(f"{name}: got no predictions to score")
    if len(predictions) != len(references):
        raise ValueError(f"{name}: {len(predictions)} predictions but {len(references)} references")
