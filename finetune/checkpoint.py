"""Checkpoint directories on disk: atomic writes, finding the latest complete one, pruning.

What goes inside a checkpoint (model, optimizer, RNG, data position) is `train_state.py`'s job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
from pathlib import Path

from finetune.errors import FinetuneError, RunDirError

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "train_state.json"  # written last into a checkpoint: marks it complete
_NAME = re.compile(r"^step-(\d+)$")
# Test hook: sleep this many seconds before publishing the named checkpoint, so a test can
# kill the process while a complete `.tmp-*` directory waits to be renamed.
STALL_ENV = "FINETUNE_TEST_STALL_CHECKPOINT"


class DiskFullError(FinetuneError):
    """The disk filled up while saving; the previous save is untouched."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


@contextlib.contextmanager
def atomic_dir(target: Path):
    """Yield a temporary sibling directory; on success it replaces `target` with one rename.

    A crash midway leaves only a `.tmp-*` directory, which the next write removes.
    """
    tmp = begin(target)
    with disk_full_is_clear(target):
        try:
            yield tmp
        except BaseException:
            abandon(tmp)
            raise
    publish(tmp, target)


def begin(target: Path) -> Path:
    target = Path(target)
    tmp = target.with_name(f".tmp-{target.name}")
    with disk_full_is_clear(target):
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    return tmp


def abandon(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, target: Path) -> None:
    target = Path(target)
    with disk_full_is_clear(target):
        _fsync_tree(tmp)
    stall = os.environ.get(STALL_ENV, "")
    if stall and stall.split(":")[0] == target.name:
        time.sleep(float(stall.split(":")[1]))
    old = target.with_name(f".old-{target.name}")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


@contextlib.contextmanager
def disk_full_is_clear(target: Path):
    """Turn ENOSPC/EDQUOT into a one-line error naming the directory; the caller's cleanup of
    the temporary directory has already run, and `target` itself was never touched."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        abandon(Path(target).with_name(f".tmp-{Path(target).name}"))
        raise DiskFullError(
            f"no space left on the device while saving '{target}'; what was saved there before "
            f"is intact; free space under '{Path(target).parent}' and run again (with --resume)"
        ) from exc


def _fsync_tree(root: Path) -> None:
    """Flush file contents before the rename, so a power cut cannot publish empty files."""
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


# ----------------------------------------------------------------------------- finding


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first. `.tmp-*` (a write cut short) never counts."""
    root = Path(run) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def remove_partial(run: Path) -> None:
    """Delete what a killed write left behind (`.tmp-*`, `.old-*` beside a complete copy)."""
    root = Path(run) / CHECKPOINTS_DIR
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(path, ignore_errors=True)


def find_resume_point(arg: str, run: Path) -> tuple[Path, Path]:
    """(run directory, checkpoint) for `--resume` (arg 'latest') or `--resume PATH`, where PATH
    is a run directory or one of its checkpoints."""
    if arg != "latest":
        path = Path(arg).expanduser()
        if (path / STATE_FILE).is_file():
            return path.parent.parent, path
        if not path.is_dir():
            raise RunDirError(f"--resume '{arg}': no such directory; pass a run directory or a checkpoint")
        run = path
    found = checkpoints(run)
    if not found:
        hint = "" if (Path(run) / "config.yaml").is_file() else " (it is not a run directory)"
        raise RunDirError(
            f"--resume: '{run}' holds no complete checkpoint{hint}; set training.save_every to "
            "write checkpoints, or start the run without --resume"
        )
    return Path(run), found[-1][1]


def prune(run: Path, keep: int, protect_step: int | None) -> None:
    """Keep the `keep` newest checkpoints and the one at `protect_step` (the best so far)."""
    found = checkpoints(run)
    for step, path in found[:-keep]:
        if step != protect_step:
            shutil.rmtree(path, ignore_errors=True)


def drop_newer(run: Path, step: int) -> list[str]:
    """Resuming from an older checkpoint: the newer ones belong to a discarded future."""
    dropped = []
    for other, path in checkpoints(run):
        if other > step:
            shutil.rmtree(path)
            dropped.append(path.name)
    return dropped
