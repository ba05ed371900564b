"""`manifest.json`: every file of a checkpoint or saved model with its size and SHA-256, written
last.

A checkpoint counts as complete only once its manifest exists, and `problem` tells a checkpoint
or saved model that was truncated, altered or lost a file from an intact one before anything is
loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from finetune.storage.run_dir import MANIFEST_FILE, partial_file

# Test hook: sleep this many seconds after the manifest's temporary file is written (before its
# rename) in the named checkpoint, so a test can kill the process in the middle of it.
STALL_ENV = "FINETUNE_TEST_STALL_MANIFEST"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(directory: Path, name: str, skip: tuple[str, ...] = ()) -> None:
    """List every file under `directory` in its manifest, but those named in `skip` (files meant
    to be edited, such as a model card); `name` is the checkpoint's final name (the directory
    itself is still a temporary one)."""
    partial = directory / partial_file(MANIFEST_FILE)
    files = {
        str(path.relative_to(directory)): {"size": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in (MANIFEST_FILE, partial.name, *skip)
    }
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump({"format": 1, "files": files}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    stall = os.environ.get(STALL_ENV, "")
    if stall and stall.split(":")[0] == name:
        time.sleep(float(stall.split(":")[1]))
    os.replace(partial, directory / MANIFEST_FILE)


def problem(directory: Path) -> str | None:
    """None if every listed file is there with its size and hash, else what is wrong (one
    clause naming the file)."""
    try:
        listed = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST_FILE} is missing or unreadable"
    for name, expected in listed.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected["size"]:
            return f"{name} has {size} bytes, {MANIFEST_FILE} says {expected['size']} (truncated or replaced)"
        if sha256_file(path) != expected["sha256"]:
            return f"{name} does not match its SHA-256 in {MANIFEST_FILE} (altered or swapped)"
    return None
