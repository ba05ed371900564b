"""Atomic directory writes: a reader sees either the old directory or the complete new one."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(target: Path):
    """Yield a temporary sibling directory; on success it replaces `target` with one rename.

    A crash midway leaves only a `.tmp-*` directory, which the next write removes.
    """
    target = Path(target)
    tmp = target.with_name(f".tmp-{target.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_tree(tmp)
    old = target.with_name(f".old-{target.name}")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def _fsync_tree(root: Path) -> None:
    """Flush file contents before the rename, so a power cut cannot publish empty files."""
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())

