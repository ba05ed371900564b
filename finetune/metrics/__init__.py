"""Offline `evaluate` metrics shipped inside the package.

``evaluate.load("accuracy")`` downloads a script from the Hugging Face Hub and
fails without network, so each metric lives here as a local evaluate module
(``<name>/<name>.py``) and is loaded by path, which evaluate resolves without
any Hub access (works under HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1).

Scale convention (all metrics):
    accuracy, f1        -> [0, 1]
    sacrebleu, chrf     -> 0-100 (sacrebleu's scale)
    rouge               -> [0, 1] (rouge_score's scale)

Result keys:
    accuracy  -> {"accuracy"}
    f1        -> {"f1"}  (a list per label when average=None)
    sacrebleu -> {"score", "counts", "totals", "precisions", "bp", "sys_len", "ref_len"}
    chrf      -> {"score", "char_order", "word_order", "beta"}
    rouge     -> {"rouge1", "rouge2", "rougeL", "rougeLsum"} (or the requested rouge_types)

Importing this package is cheap: `evaluate` (and with it datasets/pyarrow) is
imported only when a metric is first loaded.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps the import lazy
    import evaluate

__all__ = ["METRIC_NAMES", "load_metric", "metric_path"]

METRIC_NAMES: tuple[str, ...] = ("accuracy", "f1", "sacrebleu", "chrf", "rouge")

_METRICS_DIR = Path(__file__).resolve().parent


def metric_path(name: str) -> Path:
    """Directory of the bundled evaluate module for `name`.

    Raises ValueError for names that are not shipped, rather than letting
    evaluate fall back to a Hub download that cannot work offline.
    """
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; available metrics: {', '.join(METRIC_NAMES)}")
    path = _METRICS_DIR / name
    # evaluate accepts a directory only if it holds <dirname>.py; check here so
    # a broken install fails with a clear message instead of a Hub lookup.
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(f"metric module missing from the package: {path / (name + '.py')}")
    return path


@functools.lru_cache(maxsize=None)
def load_metric(name: str) -> "evaluate.EvaluationModule":
    """Load the bundled evaluate metric `name` (one of METRIC_NAMES).

    Cached per process: evaluate copies the script into its modules cache and
    imports it on every load, which is worth doing once. The returned object
    is shared, so do not interleave add_batch() calls on it from several
    places; compute(predictions=..., references=...) is self-contained.
    """
    path = metric_path(name)
    import evaluate  # heavy (pulls in datasets, pyarrow and torch); only when needed

    # keep_in_memory: evaluate otherwise buffers predictions in an Arrow file
    # (plus a lock file that is never cleaned up) under HF_HOME/metrics on
    # every compute(); our metrics run in one process, so memory is enough.
    return evaluate.load(str(path), keep_in_memory=True)
