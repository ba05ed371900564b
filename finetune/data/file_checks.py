"""Checks on local data files that the readers (pyarrow, pandas) either skip or report without
a line number: bytes that are not UTF-8, a line too long to read, a JSON Lines line that is not
an object, a CSV with only its header."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

CHUNK = 1 << 20
# The readers hold a whole line in memory several times over (pandas' and pyarrow's buffers,
# Python strings; a one-line .json file is read whole), so a longer line could end the process
# for want of memory instead of in one line. Texts are cut to `max_length` × 64 characters before
# tokenizing anyway (text_cut.py): what a longer line holds beyond that is never read.
MAX_LINE_BYTES = 256 << 20


def first_undecodable_line(path: Path) -> int | None:
    """1-based line of the first byte sequence that is not UTF-8, or None. Streams the file:
    pyarrow's JSON reader would otherwise load such bytes and fail later, mid-tokenization."""
    return scan(path)[0]


def scan(path: Path) -> tuple[int | None, tuple[int, int] | None]:
    """One streamed pass: (the first line that is not UTF-8, or None; (the first line longer
    than MAX_LINE_BYTES, its length in bytes), or None)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, length, too_long = 1, 0, None  # length: bytes of the current line so far
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            pending = decoder.getstate()[0]  # a character split across two chunks
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + (pending + chunk)[: exc.start].count(b"\n"), too_long
            parts = chunk.split(b"\n")
            if too_long is None:
                too_long = _long_line(line, length, parts)
            length = (length if len(parts) == 1 else 0) + len(parts[-1])
            line += len(parts) - 1
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line, too_long
    return None, too_long


def _long_line(line: int, length: int, parts: list[bytes]) -> tuple[int, int] | None:
    """The first line over the limit among a chunk's `parts` (the first continues a line
    `length` bytes long so far), with its length so far; None if all are within it."""
    if length + len(parts[0]) > MAX_LINE_BYTES:
        return line, length + len(parts[0])
    if len(parts) > 2 and max(map(len, parts[1:-1])) > MAX_LINE_BYTES:
        for offset, part in enumerate(parts[1:-1], start=1):
            if len(part) > MAX_LINE_BYTES:
                return line + offset, len(part)
    if len(parts) > 1 and len(parts[-1]) > MAX_LINE_BYTES:
        return line + len(parts) - 1, len(parts[-1])
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
