"""A new run that fails before its first optimizer step (a tracker that cannot start, a model or
data refused, a crash in the first batch, Ctrl-C) leaves no half-made run directory: what it
made is removed, and the run an `--overwrite` was replacing is put back as it was. So the
replaced run is parked in the run directory (rd.REPLACED_DIR) rather than deleted, and goes only
once the first step has been taken. Nothing that was there before is ever deleted here; a
resumed run does not use this (its directory is the run, kept as it is)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.storage.run_lock import is_main_process


class FreshStart:
    """The run directory of one new run, from its claim until its first step (main process)."""

    def __init__(self, out: Path):
        """Made before the run claims `out` (run_start.claim_or_find may lock a folder that exists)."""
        self.out = Path(out)
        lock_file = self.out / rd.LOCK_FILE
        self.lock_was_there = lock_file.is_file() and not lock_file.is_symlink()
        # Locking writes this process's PID into it; undo puts the last holder's back.
        try:
            self.lock_text = lock_file.read_bytes()[:64] if self.lock_was_there else None
        except OSError:
            self.lock_text = None
        self.made: list[Path] = []  # directories this run created, deepest first
        self.aside: Path | None = None  # where the replaced run is parked
        self.claimed = False  # the directory is locked and ours: undo may clean it
        self.kept = False

    def claim(self, overwrite: bool, inputs: list, lock) -> None:
        """Lock, mark and (with --overwrite) empty the directory, as rd.start does, but park the
        old run instead of deleting it."""
        if not is_main_process():
            return
        self.made = _missing(self.out)
        if overwrite and lock.held and rd.is_marked(self.out) and _entries(self.out):
            self._park()
            overwrite = False  # emptied already, and undo can put it back
        rd.start(self.out, overwrite, inputs, lock)
        self.claimed = True

    def keep(self) -> None:
        """The first step is taken: this is the run now, and the one it replaced goes for good."""
        if self.kept:
            return
        self.kept = True
        if self.aside is not None and is_main_process():
            shutil.rmtree(self.aside, ignore_errors=True)

    def undo(self, lock) -> None:
        """Remove what this run made; put a replaced run back. Best effort: the error that
        stopped the run is what the user must see, so a failure here is not raised over it."""
        if self.kept or not is_main_process():
            return
        try:
            if not self.claimed:  # failed between the claim's lock and rd.start: only the lock file
                self._remove_lock_file(lock)
                return
            if self.out.absolute() in self.made:
                shutil.rmtree(self.out)
                for parent in self.made[1:]:
                    parent.rmdir()  # only empty ones: something else may have appeared meanwhile
                return
            for entry in _entries(self.out):
                if entry != self.aside:
                    _remove(entry)
            if self.aside is not None:
                for entry in self.aside.iterdir():
                    os.replace(entry, self.out / entry.name)
                self.aside.rmdir()
            self._remove_lock_file(lock)
        except OSError:
            pass

    def _remove_lock_file(self, lock) -> None:
        """The lock file this run added to a folder that was there before, while this process
        holds it (whoever tries next finds no file, or the one it makes); one that was there
        gets its old content back."""
        lock_file = self.out / rd.LOCK_FILE
        if not (lock.held and self.out.is_dir() and lock_file.is_file()):
            return
        if self.lock_was_there:
            if self.lock_text is not None:
                lock_file.write_bytes(self.lock_text)
        else:
            lock_file.unlink()

    def _park(self) -> None:
        aside = self.out / rd.REPLACED_DIR
        if aside.exists():  # left by a run killed before its first step: the run it replaced
            _remove(aside)
        aside.mkdir()
        self.aside = aside
        for entry in _entries(self.out):
            if entry != aside:
                os.replace(entry, aside / entry.name)


def _missing(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first (absolute)."""
    missing = []
    path = path.absolute()
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _entries(path: Path) -> list[Path]:
    return [entry for entry in path.iterdir() if entry.name != rd.LOCK_FILE] if path.is_dir() else []


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()
