"""Type checks on the columns a task reads, run on every split as read from disk and before any
model is loaded, so a bad row is named up front instead of ending in a traceback deep in
tokenization, or in a run trained on str(None).

Rows are reported 1-based, counting data rows only (a CSV header is not a row). Columns of
plain types are checked in Arrow; only mixed or nested ones are walked in Python.
"""

from __future__ import annotations

import math
from typing import Any

from finetune.errors import DataError

STRING_TYPES = ("string", "large_string")
ROW_NOTE = "(data rows counted from 1)"


def check_text(ds, column: str, where: str, key: str, *, lists: bool = False) -> None:
    """Every row holds a string; with `lists`, a list of strings also counts (several
    references, or a source split into sentences)."""
    feature = ds.features[column]
    if _is_string(feature) or (lists and _is_string(getattr(feature, "feature", None))):
        row = _first_null(ds, column)
        if row is not None:
            raise DataError(
                f"{where}: column '{column}', row {row + 1} {ROW_NOTE} is null; give it a text "
                f"(an empty string is fine) or drop the row"
            )
        return
    for row, value in enumerate(ds[column]):
        if not _is_text(value, lists):
            raise DataError(
                f"{where}: column '{column}', row {row + 1} {ROW_NOTE} {_describe(value)}, not text; "
                f"{key} must name a column of strings"
            )


def check_labels(ds, column: str, where: str) -> None:
    """Class labels: names (non-empty strings), class ids (integers; 1.0 counts as 1) or
    booleans. Never null, a fraction or a list."""
    feature = ds.features[column]
    dtype = getattr(feature, "dtype", None)
    if type(feature).__name__ == "ClassLabel" or (dtype and dtype.startswith(("int", "uint", "bool"))):
        row = _first_null(ds, column)
        if row is not None:
            raise DataError(_bad_label(where, column, row, None))
        return
    if _is_string(feature):
        row = _first_null(ds, column)
        if row is None:
            row = _first_index(ds, column, "")
        if row is not None:
            raise DataError(_bad_label(where, column, row, None))
        return
    for row, value in enumerate(ds[column]):
        if not _is_label(value):
            raise DataError(_bad_label(where, column, row, value))


def spelling(label: Any) -> Any:
    """What a class name means once case and surrounding whitespace are set aside: 'positive',
    'Positive' and 'positive ' are one class written three ways."""
    return label.strip().casefold() if isinstance(label, str) else label


def check_label_spellings(ds, column: str, where: str, seen: dict) -> None:
    """Refuse labels that differ only by case or surrounding whitespace: kept apart they would
    silently make an extra class. `seen` (spelling -> (label, where, split)) carries the labels of
    the splits checked before, so train and validation are held to one spelling too."""
    labels = [v for v in ds.unique(column) if isinstance(v, str)]
    mine: dict[Any, str] = {}
    for label in labels:
        other = mine.setdefault(spelling(label), label)
        if other != label:
            first, second = sorted((other, label), key=lambda v: row_of(ds, column, v))
            raise DataError(
                f"{where}: column '{column}': labels {first!r} (row {row_of(ds, column, first) + 1}) and "
                f"{second!r} (row {row_of(ds, column, second) + 1}) {ROW_NOTE} differ only by case or "
                "surrounding whitespace; write each class one way (they would become two classes)"
            )
    for key, label in mine.items():
        known_label, known_where, known_ds = seen.setdefault(key, (label, where, ds))
        if known_label != label:
            raise DataError(
                f"column '{column}': label {known_label!r} in {known_where} (row "
                f"{row_of(known_ds, column, known_label) + 1}) and {label!r} in {where} (row "
                f"{row_of(ds, column, label) + 1}) {ROW_NOTE} differ only by case or surrounding "
                "whitespace; write each class one way in every file"
            )


def row_of(ds, column: str, value: Any) -> int:
    """0-based row of the first occurrence of `value` (known to be there)."""
    if _is_string(ds.features[column]):
        return _first_index(ds, column, value)
    return list(ds[column]).index(value)


def _bad_label(where: str, column: str, row: int, value: Any) -> str:
    if value is None or value == "":
        what, fix = "has an empty label", "fill it in or drop the row"
    elif isinstance(value, float):
        what, fix = f"has label {value}, not a whole number", "labels are class ids (0, 1, ...) or class names"
    else:
        what, fix = f"{_describe(value)}, not a label", "a label is one class name or class id per row"
    return f"{where}: column '{column}', row {row + 1} {ROW_NOTE} {what}; {fix}"


def _is_string(feature) -> bool:
    return getattr(feature, "dtype", None) in STRING_TYPES


def _is_text(value: Any, lists: bool) -> bool:
    if isinstance(value, str):
        return True
    return lists and isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_label(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    return isinstance(value, int) or (isinstance(value, str) and value != "")


def _first_null(ds, column: str) -> int | None:
    values = ds.with_format("arrow")[column]
    if not values.null_count:
        return None
    import pyarrow.compute as pc

    return pc.index(pc.is_null(values), True).as_py()


def _first_index(ds, column: str, value: Any) -> int | None:
    import pyarrow.compute as pc

    found = pc.index(ds.with_format("arrow")[column], value).as_py()
    return None if found < 0 else found


def _describe(value: Any) -> str:
    if value is None:
        return "is null"
    if isinstance(value, bool):
        return f"holds a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"holds a number ({value})"
    if isinstance(value, dict):
        return "holds a mapping"
    if isinstance(value, list):
        return "holds a list"
    return f"holds a {type(value).__name__}"
