"""Write a file whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader, a crash or a full disk leaves the old file or the
    new one, never half of one: the text goes to a temporary name beside it (this process's own,
    so two writers of one shared cache file do not mix), which is then renamed over `path`."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        try:
            os.replace(partial, path)
        except OSError as exc:  # e.g. a directory stands at `path`: name it, not our temporary
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    finally:
        partial.unlink(missing_ok=True)  # only there if the write or the rename failed
