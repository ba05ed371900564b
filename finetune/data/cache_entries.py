"""The data cache's entries (data files as parsed, tokenized rows) are keyed by content and
trusted only as recorded.

Each entry gets a record beside it once it is complete: its key and the SHA-256 of every file it
holds. Before an entry is read again the record is checked, so an entry that was truncated,
swapped for another split's or edited is rebuilt from the data files with one warning line,
instead of being read as it is (silently wrong rows) or failing on every later run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")
RECORD_SUFFIX = ".record.json"
_warned = False  # one warning line per reading of the data, however many entries were damaged


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_key(**parts) -> str:
    """A stable digest of JSON-able parts (file digests, options)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def reuse_or_rebuild(entry: Path, key: str, build: Callable[[], T], files_of: Callable[[T], list[str]],
                     *, unrecorded_is_damage: bool) -> T:
    """`build()` reads `entry` when it exists, else writes it; `files_of(result)` lists the files
    it holds. An entry whose record is missing or disagrees with its files is removed before
    `build()` runs, so it is written afresh.

    `unrecorded_is_damage`: an entry with no record is rebuilt (quietly). Off for entries that
    the library writes under its own lock, where another process may be writing it right now.
    """
    record = entry.with_name(entry.name + RECORD_SUFFIX)
    reason = _problem(record, key) if entry.exists() else None
    if reason == "no record" and not unrecorded_is_damage:
        reason = None
    elif reason == "no record":
        _discard(entry, record)
        reason = None
    elif reason:
        _discard(entry, record)
        _warn(entry, reason)
    cached = entry.exists()
    try:
        result = build()
    except Exception:
        if not cached:
            raise  # nothing was cached: the data itself is at fault
        _discard(entry, record)
        result = build()  # raises the data's own error if the entry was not to blame
        _warn(entry, "could not be read")
    files = files_of(result)
    if _recorded_names(record, key) != sorted(_name(f, record) for f in files):
        _write_record(record, key, files)
    return result


def start_reading() -> None:
    """A new reading of the data (a command's): its first damaged entry is reported again."""
    global _warned
    _warned = False


def _problem(record: Path, key: str) -> str | None:
    try:
        held = json.loads(record.read_text(encoding="utf-8"))
        recorded_key, files = held["key"], held["files"]
    except FileNotFoundError:
        return "no record"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its record {record.name} is unreadable"
    if recorded_key != key:
        return f"its record {record.name} belongs to another entry"
    for name, digest in files.items():
        path = record.parent / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256_file(path) != digest:
            return f"{name} was truncated or changed since it was written"
    return None


def _recorded_names(record: Path, key: str) -> list[str] | None:
    try:
        held = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict) or held.get("key") != key or not isinstance(held.get("files"), dict):
        return None
    return sorted(held["files"])


def _name(path: str, record: Path) -> str:
    """A file as the record names it: relative, so the whole cache may move."""
    return os.path.relpath(path, record.parent)


def _write_record(record: Path, key: str, files: list[str]) -> None:
    """Atomically (several processes may write the same record at once)."""
    held = {"key": key, "files": {_name(f, record): sha256_file(f) for f in files}}
    fd, partial = tempfile.mkstemp(dir=record.parent, prefix=record.name, suffix=".partial")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(held, handle, indent=1)
    os.replace(partial, record)


def _discard(entry: Path, record: Path) -> None:
    """Both are finetune's own: named by it, inside its cache."""
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    elif entry.exists():
        entry.unlink()
    record.unlink(missing_ok=True)


def _warn(entry: Path, reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"warning: data cache entry '{entry}' was damaged ({reason}); rebuilding it "
              "(and any other damaged entry) from the data files", file=sys.stderr)
