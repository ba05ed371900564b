"""A write the operating system refuses (disk full, read-only, no permission, a file where a
directory should be) becomes one line naming the path and the cause.

Savers wrap their writes in `write_errors_are_clear`; the CLI's main() turns any such OSError
that escaped them into the same line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

from finetune.errors import FinetuneError

_FREE_SPACE = "free space on that device and run again (a train run: add --resume to continue it)"
_ADVICE = {
    errno.ENOSPC: _FREE_SPACE,
    errno.EDQUOT: _FREE_SPACE,
    errno.EROFS: "set training.output_dir to a directory on a writable file system",
    errno.EACCES: "fix its permissions, or set training.output_dir to a directory you may write",
    errno.EPERM: "fix its permissions, or set training.output_dir to a directory you may write",
    errno.ENOTDIR: "a file stands where a directory is needed: move or rename that file",
    errno.EEXIST: "a file stands where a directory is needed: move or rename that file",
    errno.EISDIR: "a directory stands where a file is needed: move or rename that directory",
}
WRITE_ERRNOS = frozenset(_ADVICE)
# safetensors (Rust) keeps the errno only in its message: "... (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
# torch's C++ writer loses the errno ("unexpected pos ..."); a device left this empty was full.
_NEARLY_FULL = 1 << 20


class WriteError(FinetuneError):
    """The operating system refused a write; the message names the path and the cause."""


@contextlib.contextmanager
def write_errors_are_clear(target: Path, keeps_previous: bool = False):
    """Turn a refused write inside the block into a WriteError naming `target` (or the file the
    OS named). `keeps_previous`: the write was atomic, so say what was there before is intact."""
    try:
        yield
    except FinetuneError:
        raise
    except Exception as exc:
        code = write_errno(exc, target)
        if code is None:
            raise
        raise WriteError(describe(exc, code, target, keeps_previous)) from exc


def as_write_error(exc: OSError) -> WriteError | None:
    """The WriteError for an OSError that escaped every saver, or None if it is no refused write."""
    code = write_errno(exc)
    return None if code is None else WriteError(describe(exc, code))


def write_errno(exc: BaseException, target: Path | None = None) -> int | None:
    """The errno behind a refused write, or None when `exc` is something else."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in WRITE_ERRNOS:
            return seen.errno
        match = _RUST_OS_ERROR.search(str(seen))
        if match and int(match.group(1)) in WRITE_ERRNOS:
            return int(match.group(1))
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, RuntimeError) and target is not None and _free_bytes(Path(target)) < _NEARLY_FULL:
        return errno.ENOSPC
    return None


def describe(exc: BaseException, code: int, target: Path | None = None, keeps_previous: bool = False) -> str:
    """`<cause> while writing '<path>'; <what to do>`, the cause as the OS words it."""
    filename = getattr(exc, "filename", None)
    # An atomic save writes into `.tmp-NAME`: the user knows the target, not the temporary name.
    path = Path(target if keeps_previous and target is not None else filename or target)
    if code in (errno.ENOTDIR, errno.EEXIST):
        path = _blocking_file(Path(filename or path))
    cause = os.strerror(code)
    line = f"{cause[0].lower()}{cause[1:]} while writing '{path}'"
    if keeps_previous:
        line += "; what was saved there before is intact"
    return f"{line}; {_ADVICE[code]}"


def _blocking_file(path: Path) -> Path:
    """The file standing in the way of a directory on `path` (itself or an ancestor)."""
    for candidate in (path, *path.parents):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return path


def _free_bytes(path: Path) -> int:
    for candidate in (path, *path.parents):
        if candidate.exists():
            stats = os.statvfs(candidate)
            return stats.f_bavail * stats.f_frsize
    return _NEARLY_FULL
