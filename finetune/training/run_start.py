"""Where a training process starts: a new run claims its directory; `--resume` finds the
checkpoint to continue, checks that the config and data still train the same thing, and puts
the run back where the checkpoint left it. Also the one line that says how to continue."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from finetune.storage import checkpoint as ck
from finetune.storage import run_dir as rd
from finetune.training import train_state
from finetune.configuration.config import RunConfig
from finetune.errors import RunDirError
from finetune.storage.run_lock import RunLock
from finetune.training.train_state import Position


@dataclass
class Start:
    out: Path
    inputs: list  # (what, path) of the files this run reads, which --overwrite must not delete
    data_sha256: dict
    checkpoint: Path | None = None  # None: a new run
    damaged: list = field(default_factory=list)  # newer checkpoints that failed their manifest
    lr_scale: float = 1.0  # new training.lr / the checkpoint's


def claim_or_find(cfg: RunConfig, out: Path, lock: RunLock, *, overwrite: bool, resume: str | None,
                  config_file: Path | None) -> Start:
    """`resume`: None (a new run), 'latest' (the newest checkpoint of `out`), or a path to a
    run directory or to one of its checkpoints. Returns with `lock` held on an existing run."""
    if not resume:
        inputs = _inputs(cfg, config_file)
        _claim(out, overwrite, inputs, lock)
        # After the claim: a refused run (another writer, a user's folder) reads no data first.
        return Start(out, inputs, train_state.data_sha256(cfg))
    if overwrite:
        raise RunDirError("--resume continues a run and --overwrite deletes it; pass only one")
    found, checkpoint, damaged = ck.find_resume_point(resume, out)
    if resume != "latest" and found.resolve() != out.resolve():
        raise RunDirError(
            f"--resume '{resume}': it belongs to the run '{found}', but this "
            f"config trains into '{out}'; resume with that run's config "
            f"({found / rd.CONFIG_FILE}), or set training.output_dir={found}"
        )
    if (found / rd.CHECKPOINTS_DIR).is_symlink():  # saving and pruning would write through it
        raise RunDirError(
            f"--resume: '{found / rd.CHECKPOINTS_DIR}' is a symbolic link; finetune saves and prunes "
            "checkpoints only in a folder of the run, never through a link: put the folder it points "
            "to in its place (mv), then resume"
        )
    cfg.training.output_dir = str(found)
    data_sha256 = train_state.data_sha256(cfg)
    lr_scale = train_state.check_compatible(cfg, checkpoint, data_sha256)
    lock.acquire(found)  # before moving damaged checkpoints aside, drop_newer and any other write
    return Start(found, [], data_sha256, checkpoint, damaged, lr_scale)


def continue_from(run, start: Start) -> Position:
    """Load the checkpoint into the built run; set aside what is newer than it."""
    from finetune.training.assemble import write_config

    pos = train_state.load(run, start.checkpoint, start.lr_scale)
    run.best = pos.best
    if run.accelerator.is_main_process:
        for line in ck.move_aside(start.damaged, start.checkpoint):
            print(line, file=sys.stderr)
        write_config(run.cfg, run.out, run.accelerator.num_processes)  # with the settings changed on resume (lr, max_steps...)
        ck.drop_newer(run.out, pos.step)
    run.accelerator.print(
        f"resuming from {start.checkpoint} (step {pos.step}, epoch {pos.epoch}, "
        f"{pos.batches_in_epoch} batches into it)"
    )
    return pos


def resume_hint(out: Path) -> str:
    """The command that continues the run, as it works when pasted (after a divergence,
    divergence.advice says which checkpoint is still good)."""
    import shlex

    found = ck.checkpoints(out)
    if not found:
        return "No checkpoint was saved (set training.save_every to write them)."
    command = f"finetune train --config {shlex.quote(str(out / rd.CONFIG_FILE))} --resume"
    return f"Last checkpoint: {found[-1][1]}; continue with: {command}"


def _inputs(cfg: RunConfig, config_file: Path | None) -> list[tuple[str, Path]]:
    """The files this run reads, which no run directory may swallow."""
    from finetune.configuration.paths import resolve

    files = [(f"data file data.files.{split}", Path(resolve(path, f"data.files.{split}")))
             for split, path in cfg.data.files.items()]
    return ([("config file", Path(config_file))] if config_file else []) + files


def _claim(out: Path, overwrite: bool, inputs: list, lock: RunLock) -> None:
    """Refuse a directory this run may not write into, and lock an existing one, before the
    model loads (a second writer is refused at once). A directory that does not exist yet is
    created and locked in `setup`, once set-up succeeded, so a failed start leaves nothing."""
    rd.check_writable(out, overwrite, inputs)  # only reads: a folder we refuse stays untouched
    if out.is_dir():
        lock.acquire(out)
        rd.check_writable(out, overwrite, inputs)  # again, now that no other writer can change it
