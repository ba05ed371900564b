"""A config must survive being written back: every run saves its resolved config as config.yaml,
which `--resume`, `eval` and `predict` read again. Values that YAML or JSON cannot carry whole
(NaN/inf, control characters, dates and bytes YAML's tags make, integers beyond 64 bits, text
or nesting far beyond any real config) are refused with the key that holds them, before any work.
"""

from __future__ import annotations

import math
import re
from typing import Any

from finetune.configuration.strict_yaml import MAX_DEPTH

MAX_TEXT = 100_000  # characters in one value; the longest real one, a prompt template, has a few hundred
MAX_CONFIG = 1_000_000  # characters of config.yaml; a real one has a few thousand
INT64 = 2**63  # what torch, NumPy and the trackers can take as an integer
# C0 controls but tab, newline and carriage return; DEL and C1 controls; lone UTF-16 surrogates
# (they cannot be encoded as UTF-8, so config.yaml could not be written).
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class Unwritable(ValueError):
    """`path`: the keys down to the refused value, e.g. ['training', 'lr']."""

    def __init__(self, path: list[str], problem: str):
        super().__init__(problem)
        self.path = path


def check_values(raw: Any) -> None:
    """Walk the YAML as read (and overridden): refuse any value config.yaml could not hold."""
    stack: list[tuple[list[str], Any, int]] = [([], raw, 0)]
    while stack:  # iterative: a very deep value must be refused, not overflow the stack
        path, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Unwritable(path, f"nested too deeply (more than {MAX_DEPTH} levels); a config needs far fewer")
        if isinstance(value, dict):
            for key, child in value.items():
                if not isinstance(key, str):
                    raise Unwritable(path + [str(key)], f"the key {key!r} is not text; quote it")
                stack.append((path + [key], child, depth + 1))
        elif isinstance(value, list):
            stack.extend((path + [str(i)], child, depth + 1) for i, child in enumerate(value))
        else:
            _check_scalar(path, value)


def _check_scalar(path: list[str], value: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise Unwritable(path, f"{value:.3g} does not fit a 64-bit integer; no real setting is that large")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Unwritable(path, f"{value} is not a finite number; give a number")
    elif isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise Unwritable(path, f"{len(value):,} characters, more than {MAX_TEXT:,}; no real setting is that long")
        bad = _BAD_CHARS.search(value)
        if bad:
            raise Unwritable(path, f"holds the control character {bad.group()!r} at position {bad.start()}; "
                             "remove it (tab and newline are fine)")
    else:  # YAML tags make dates (2024-01-01), bytes (!!binary), sets (!!set)...
        raise Unwritable(path, f"YAML reads {value!s:.40} as a {type(value).__name__}, which config.yaml "
                         "would write back as text; quote it to mean text")


def check_round_trip(cfg) -> None:
    """Write the validated config as config.yaml is written, read it back, and compare."""
    from finetune.configuration.config import RunConfig
    from finetune.configuration.strict_yaml import load_yaml_text

    text = cfg.to_yaml()
    if len(text) > MAX_CONFIG:
        raise Unwritable([], f"written back as config.yaml it would be {len(text):,} characters, more than "
                         f"{MAX_CONFIG:,}; no real config is that large")
    before = cfg.model_dump()
    after = RunConfig.model_validate(load_yaml_text(text)).model_dump()
    if before != after:
        path, was, now = _first_difference(before, after, [])
        raise Unwritable(path, f"{was!r} would be read back from config.yaml as {now!r}; write it so "
                         "that it reads the same (quote text)")


def _first_difference(a: Any, b: Any, path: list[str]) -> tuple[list[str], Any, Any]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), path + [str(key)])
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, path + [str(i)])
    return path, a, b
