"""Checks on local data files that the readers (pyarrow, pandas) either skip or report without
a line number: bytes that are not UTF-8, a JSON Lines line that is not an object, a CSV with
only its header."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

CHUNK = 1 << 20


def first_undecodable_line(path: Path) -> int | None:
    """1-based line of the first byte sequence that is not UTF-8, or None. Streams the file:
    pyarrow's JSON reader would otherwise load such bytes and fail later, mid-tokenization."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            pending = decoder.getstate()[0]  # a character split across two chunks
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + (pending + chunk)[: exc.start].count(b"\n")
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line
    return None


def explain_read_failure(path: Path, fmt: str) -> str | None:
    """Why a file the reader refused is wrong, in words that name the line; None if unknown.
    Only called after a failure, so a well-formed file is never read twice."""
    if fmt == "jsonl":
        return _first_non_object_line(path)
    if fmt in ("csv", "tsv"):
        with open(path, encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip()][:2]
        if len(lines) == 1:
            return "holds a header row and no data rows; add rows below the header"
    return None


def _first_non_object_line(path: Path) -> str | None:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                return f"line {number} is not valid JSON ({exc.msg}); JSON Lines holds one object per line"
            if not isinstance(value, dict):
                return (
                    f"line {number} is a JSON {type(value).__name__}, not an object; JSON Lines "
                    'holds one {"column": value} object per line'
                )
    return None
