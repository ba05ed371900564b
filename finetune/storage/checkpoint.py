"""Checkpoint directories on disk: atomic writes, finding the latest complete one, pruning.

What goes inside a checkpoint (model, optimizer, RNG, data position) is `train_state.py`'s job.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from finetune.storage import disk_errors

from finetune.storage import manifest
from finetune.storage import run_dir as rd
from finetune.errors import RunDirError

# Test hook: sleep this many seconds before publishing the named checkpoint, so a test can
# kill the process while a complete `.tmp-*` directory waits to be renamed.
STALL_ENV = "FINETUNE_TEST_STALL_CHECKPOINT"


@contextlib.contextmanager
def atomic_dir(target: Path, owner: bool = True):
    """Yield a temporary sibling directory; on success it replaces `target` with one rename.

    A crash midway leaves only a `.tmp-*` directory, which the next write removes. Several
    processes may write into one directory: only the `owner` creates and publishes it (the
    others must wait until it exists); whichever fails removes it.
    """
    target = Path(target)
    tmp = _begin(target) if owner else rd.temporary(target)
    try:
        with _write_errors_are_clear(target):  # judged before cleanup frees the space again
            yield tmp
    except BaseException:
        _abandon(tmp)
        raise
    if owner:
        _publish(tmp, target)


def _begin(target: Path) -> Path:
    tmp = rd.temporary(target)
    with _write_errors_are_clear(target):
        rd.remove(tmp)  # a crash's leftover (a symlink there goes as a link)
        tmp.mkdir(parents=True)
    return tmp


def _abandon(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        rd.remove(tmp)


def _publish(tmp: Path, target: Path) -> None:
    try:
        with _write_errors_are_clear(target):
            _fsync_tree(tmp)
        stall = os.environ.get(STALL_ENV, "")
        if stall and stall.split(":")[0] == target.name:
            time.sleep(float(stall.split(":")[1]))
    except BaseException:  # a second Ctrl-C (KeyboardInterrupt) abandons the save, not the last one
        _abandon(tmp)
        raise
    old = rd.previous(target)
    if target.exists() or target.is_symlink():  # a symlink is moved and removed as a link
        rd.remove(old)
        os.replace(target, old)
    os.replace(tmp, target)
    rd.remove(old)


@contextlib.contextmanager
def _write_errors_are_clear(target: Path):
    """A refused write (disk full, read-only, ...) becomes one line naming `target`; the
    temporary directory is removed first, and `target` itself was never touched."""
    try:
        with disk_errors.write_errors_are_clear(target, keeps_previous=True):
            yield
    except disk_errors.WriteError:
        _abandon(rd.temporary(target))
        raise


def _fsync_tree(root: Path) -> None:
    """Flush file contents before the rename, so a power cut cannot publish empty files."""
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


# ----------------------------------------------------------------------------- finding


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run (their manifest, written last, exists), oldest first.
    `.tmp-*` (a write cut short) never counts."""
    return [(step, path) for step, path in _step_dirs(run) if (path / rd.MANIFEST_FILE).is_file()]


def _step_dirs(run: Path) -> list[tuple[int, Path]]:
    root = Path(run) / rd.CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    steps = ((rd.checkpoint_step(path.name), path) for path in root.iterdir())
    return sorted((step, path) for step, path in steps if step is not None)


def remove_partial(run: Path, saved_dirs: tuple[str, ...] = ()) -> None:
    """Delete what a killed or refused write left behind: `.tmp-*` and `.old-*` (beside a
    complete copy) in checkpoints/, and `.tmp-NAME` of the run's own `saved_dirs` (final, best),
    whose `.old-NAME` goes back in place if a kill came between publish()'s two renames."""
    root = Path(run) / rd.CHECKPOINTS_DIR
    if root.is_dir() and not root.is_symlink():
        for path in root.iterdir():
            if path.name.startswith((rd.TMP_PREFIX, rd.OLD_PREFIX)):
                _remove_quietly(path)
    for name in saved_dirs:
        target = Path(run) / name
        _remove_quietly(rd.temporary(target))
        old = rd.previous(target)
        if old.is_dir() or old.is_symlink():
            rd.remove(old) if target.exists() or target.is_symlink() else os.replace(old, target)


def _remove_quietly(path: Path) -> None:
    """Tidying up: what cannot be removed now is tried again next time."""
    with contextlib.suppress(OSError):
        rd.remove(path)


def find_resume_point(arg: str, run: Path) -> tuple[Path, Path, list[tuple[Path, str]]]:
    """(run directory, checkpoint, damaged) for `--resume` (arg 'latest') or `--resume PATH`,
    where PATH is a run directory or one of its checkpoints. The checkpoint is the newest one
    that passes verification; `damaged` lists the newer ones that failed, with what is wrong
    (the caller moves them aside once the run is set up). A named checkpoint must be intact."""
    if arg != "latest":
        path = Path(arg).expanduser()
        if rd.checkpoint_step(path.name) is not None and path.parent.name == rd.CHECKPOINTS_DIR and path.is_dir():
            _refuse_old_format(path)
            if problem := manifest.problem(path):
                raise RunDirError(f"--resume: checkpoint '{path}' is damaged: {problem}; resume from another one")
            return path.parent.parent, path, []
        if not path.is_dir():
            raise RunDirError(f"--resume '{arg}': no such directory; pass a run directory or a checkpoint")
        run = path
    found = checkpoints(run)
    if not found:
        if unfinished := _step_dirs(run):
            _refuse_old_format(unfinished[-1][1])
            raise RunDirError(
                f"--resume: no checkpoint in '{run}' has its {rd.MANIFEST_FILE} (written "
                f"last: {unfinished[-1][1].name} was cut short or damaged); start a new run"
            )
        hint = "" if (Path(run) / rd.CONFIG_FILE).is_file() else " (it is not a run directory)"
        raise RunDirError(
            f"--resume: '{run}' holds no complete checkpoint{hint}; set training.save_every to "
            "write checkpoints, or start the run without --resume"
        )
    damaged = []
    for _, path in reversed(found):
        problem = manifest.problem(path)
        if problem is None:
            return Path(run), path, damaged
        damaged.append((path, problem))
    path, problem = damaged[0]
    raise RunDirError(
        f"--resume: no intact checkpoint in '{run}': in {path.name}, {problem}"
        f"{' (and the older ones are damaged too)' if len(damaged) > 1 else ''}; start a new run"
    )


def _refuse_old_format(path: Path) -> None:
    """Before the manifest, checkpoints were Accelerate's save_state: pickles throughout, and
    train_state.json had no "format" key."""
    if (path / rd.MANIFEST_FILE).is_file():
        return
    try:
        formatted = "format" in json.loads((path / rd.STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        formatted = False
    pickles = any(p.suffix in (".pkl", ".bin", ".pt") for p in path.iterdir())
    if pickles or ((path / rd.STATE_FILE).is_file() and not formatted):
        raise RunDirError(
            f"--resume: '{path}' was written by an older finetune in a format that needs pickle "
            "(which can run code), so it is not loaded; start a new run, or finish this one with "
            "the finetune version that wrote it"
        )


def move_aside(damaged: list[tuple[Path, str]], resumed: Path) -> list[str]:
    """Rename each damaged checkpoint to `step-N.damaged` (never deleted: a user may want to
    look inside); one line per checkpoint saying what was wrong and where it went."""
    lines = []
    for path, problem in damaged:
        target = path.with_name(path.name + rd.DAMAGED_SUFFIX)
        rd.remove(target)  # an older damaged copy of the same step, also ours (a link: only the link)
        os.replace(path, target)
        lines.append(f"warning: checkpoint {path.name} is damaged ({problem}); moved it to "
                     f"{target.name} and resuming from {resumed.name}")
    return lines


def prune(run: Path, keep: int, protect_step: int | None) -> None:
    """Keep the `keep` newest checkpoints and the one at `protect_step` (the best so far)."""
    found = checkpoints(run)
    for step, path in found[:-keep]:
        if step != protect_step:
            _remove_quietly(path)


def drop_newer(run: Path, step: int) -> list[str]:
    """Resuming from an older checkpoint: the newer ones belong to a discarded future."""
    dropped = []
    for other, path in checkpoints(run):
        if other > step:
            rd.remove(path)
            dropped.append(path.name)
    return dropped
