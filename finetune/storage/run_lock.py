"""One writer per run directory: an exclusive `flock` on RUN/.finetune-lock, holding the PID.

The kernel drops a flock when its process dies, however it dies, so a killed run never leaves a
stale lock; the file stays behind, harmless, and the next writer locks it again. The lock file
lives inside the run directory, so `--overwrite` empties the directory but keeps that file (and
the directory itself): deleting or recreating either would leave the lock on an orphaned inode
that a second writer could not see. A sibling lock file would keep working too, but would litter
the folder that holds the run with files finetune does not own.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from finetune.storage.disk_errors import write_errors_are_clear
from finetune.errors import RunDirError, RunInUse
from finetune.storage.run_dir import LOCK_FILE


def is_main_process() -> bool:
    """Under torchrun / accelerate launch only rank 0 writes the run directory, and locks it."""
    return os.environ.get("RANK", "0") == "0"


class RunLock:
    """Held from `acquire` until `release` or the end of the process; a no-op on other ranks."""

    def __init__(self) -> None:
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None or not is_main_process()

    def acquire(self, run: Path) -> None:
        if self.held:
            return
        path = Path(run) / LOCK_FILE
        with write_errors_are_clear(path):  # read-only, no permission, ...: one line naming it
            if path.is_symlink():  # never lock (or write a PID into) what a link points to
                path.unlink()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise RunDirError(f"cannot lock '{path}': {exc.strerror}") from exc
            raise RunInUse(
                f"'{run}' is in use by another finetune process (PID {holder}); wait for it to end "
                "or stop it, then run again", holder
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
