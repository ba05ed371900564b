"""The run directory: what goes where, and deleting nothing but a directory finetune made.
Every name finetune gives a file or folder of a run is spelled here, temporary ones included."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from finetune.errors import RunDirError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
MODEL_DIR = "model"  # final model (full fine-tune) or adapter, with the tokenizer
BEST_DIR = "best"  # best model by the chosen metric
TOKENIZER_DIR = "tokenizer"  # the tokenizer learnt from the data (model.tokenizer.train)
BEST_FILE = "best.json"  # in BEST_DIR: the metric, its value and the step
CHECKPOINTS_DIR = "checkpoints"
MERGED_DIR = "merged"  # `finetune merge`'s output unless given another
MARKER_FILE = ".finetune-run"  # JSON {format, run_id, created}: finetune made this directory
LOCK_FILE = ".finetune-lock"  # see run_lock.py
REPLACED_DIR = ".finetune-replaced"  # --overwrite parks the run it replaces here until the first step (failed_start.py)
CARD_FILE = "README.md"  # the model card, in the run and in MODEL_DIR
PLOTS_DIR = "plots"  # holds the figures below (`finetune plot`)
LOSS_PLOT = "train_loss.png"
LR_PLOT = "learning_rate.png"
EVAL_PLOT = "eval_metrics.png"
ATTENTION_DIR = "attention"
REPORT_FILE = "report.html"  # `finetune report`
REPORT_RECORD = ".finetune-report.json"  # {sha256} of the report.html finetune wrote last
TENSORBOARD_DIR = "tensorboard"  # training.report_to trackers that write files keep them here
MLRUNS_DIR = "mlruns"  # MLflow's file store, unless MLFLOW_TRACKING_URI names another
TRACKER_RUNS_FILE = "trackers.json"  # {tracker: its run id}: a resumed run logs on into the same run
AIM_DIR = "aim"
DVCLIVE_DIR = "dvclive"

# In a saved model directory (MODEL_DIR, BEST_DIR, a checkpoint): the names transformers and
# peft give their files (saved_model.py).
MODEL_CONFIG_FILE = "config.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
# Beside an adapter: the model config as trained (label names, pad id). Not MODEL_CONFIG_FILE,
# which makes transformers take the directory for a full model; runs before it wrote that.
ADAPTER_BASE_CONFIG_FILE = "base_model_config.json"
MODEL_WEIGHTS_FILE = "model.safetensors"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"

# In each checkpoint, CHECKPOINTS_DIR/step-NNNNNN (the files of its state: state_files.py).
STATE_FILE = "train_state.json"
MANIFEST_FILE = "manifest.json"  # written last: a checkpoint without it is incomplete
DAMAGED_SUFFIX = ".damaged"  # a checkpoint that failed verification, kept for inspection
_CHECKPOINT_NAME = re.compile(r"^step-(\d+)$")

# An atomic write builds TMP_PREFIX+name, then parks the copy it replaces as OLD_PREFIX+name
# between its two renames (checkpoint.py).
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"


def eval_file(split: str, weights: str | None = None) -> str:
    """`weights`: None for the final model; `best` or a checkpoint name keeps its own files, so
    scoring a checkpoint never overwrites the final model's results."""
    return f"eval_{split}{_of(weights)}.json"


def predictions_file(split: str, weights: str | None = None) -> str:
    return f"predictions_{split}{_of(weights)}.jsonl"


def confusion_file(split: str, weights: str | None = None) -> str:
    return f"confusion_{split}{_of(weights)}.png"


def _of(weights: str | None) -> str:
    return f".{Path(weights).name}" if weights else ""


def attention_file(layer: int, head: int, kind: str = "self") -> str:
    """In ATTENTION_DIR (`finetune attention`); `kind`: self, or T5's encoder, decoder, cross."""
    return f"{_kind(kind)}layer{layer}_head{head}.png"


def attention_grid_file(layer: int, kind: str = "self") -> str:
    """Every head of one layer, in ATTENTION_DIR."""
    return f"{_kind(kind)}layer{layer}_heads.png"


def _kind(kind: str) -> str:
    return "" if kind == "self" else f"{kind}_"


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoint_step(name: str) -> int | None:
    """The step of a checkpoint directory's name; None for any other name."""
    match = _CHECKPOINT_NAME.match(name)
    return int(match.group(1)) if match else None


def temporary(target: Path) -> Path:
    return Path(target).with_name(TMP_PREFIX + Path(target).name)


def previous(target: Path) -> Path:
    return Path(target).with_name(OLD_PREFIX + Path(target).name)


def partial_file(name: str) -> str:
    """A file written whole under this name, then renamed to `name`."""
    return f".{name}.tmp"


def write_marker(path: Path) -> None:
    """Claim a directory for this run: `--overwrite` only ever empties a directory carrying it."""
    marker = {"format": 1, "run_id": uuid.uuid4().hex, "created": datetime.now(timezone.utc).isoformat()}
    (path / MARKER_FILE).write_text(json.dumps(marker) + "\n", encoding="utf-8")


def run_id(path: Path) -> str | None:
    """The marker's id: it changes when `--overwrite` replaces the run (None: no readable marker)."""
    try:
        return json.loads((path / MARKER_FILE).read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def is_marked(path: Path) -> bool:
    """A marker finetune wrote: a file, not a symlink to one (that proves nothing about the folder)."""
    marker = path / MARKER_FILE
    return marker.is_file() and not marker.is_symlink()


def is_legacy_run(path: Path) -> bool:
    """A run written before the marker existed: a config beside what training writes."""
    return (path / CONFIG_FILE).is_file() and any(
        (path / name).exists() for name in (METRICS_FILE, MODEL_DIR, CHECKPOINTS_DIR)
    )


def check_writable(path: Path, overwrite: bool, inputs: Sequence[tuple[str, Path]] = ()) -> None:
    """Refuse a directory a new run may not write into; only reads, and is called before any work.
    `inputs`: (what, path) of the files this run reads (config, data), which must survive."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"training.output_dir '{path}': is a file, not a directory; choose another path")
    _refuse_inside_a_run(path, "training.output_dir")
    entries = _contents(path)
    if not entries:
        return
    inside = _inputs_inside(path, inputs)
    if not (is_marked(path) or is_legacy_run(path)):
        holds = f"this run's {inside[0]} '{inside[1]}'" if inside else ", ".join(entries[:3]) + (
            ", ..." if len(entries) > 3 else "")
        raise RunDirError(
            f"training.output_dir '{path}' is not empty and was not created by finetune (it holds "
            f"{holds}); choose an empty or new directory"
        )
    if inside:
        raise RunDirError(
            f"training.output_dir '{path}' holds this run's {inside[0]} '{inside[1]}', which replacing "
            "the run would delete; move it out of the run directory or choose another output_dir"
        )
    if not is_marked(path):
        # A run from a finetune without markers: surely a run, but nothing proves this folder
        # holds only what finetune wrote, so --overwrite leaves it to the user.
        raise RunDirError(
            f"training.output_dir '{path}': already holds a run written by an older finetune, which "
            "--overwrite does not delete; delete it yourself, pass --resume to continue it, or set "
            "training.output_dir to a new directory"
        )
    if not overwrite:
        raise RunDirError(
            f"training.output_dir '{path}': already holds a run; pass --overwrite to replace it, "
            "--resume to continue it, or set training.output_dir to a new directory"
        )
    if inner := _run_below(path):
        raise RunDirError(
            f"training.output_dir '{path}' holds another run, '{inner}', which --overwrite would "
            "delete; move that run out of it first, or set training.output_dir to a new directory"
        )


def enclosing_run(path: Path) -> Path | None:
    """The run directory `path` lies inside (not `path` itself): a marked folder among its
    parents, as written or with symlinks resolved. A run there would be emptied by that run's
    --overwrite, or replaced or pruned with its model/, best/ or checkpoints/."""
    path = Path(path).expanduser()
    for candidate in (path.absolute(), path.resolve()):
        for parent in candidate.parents:
            if is_marked(parent):
                return parent
    return None


def _refuse_inside_a_run(path: Path, what: str) -> None:
    if outer := enclosing_run(path):
        raise RunDirError(
            f"{what} '{path}' is inside the run directory '{outer}', which would delete it with "
            "its own files (--overwrite, checkpoint pruning); choose a directory outside any run"
        )


def _run_below(path: Path) -> Path | None:
    """A marked folder somewhere below `path` (symlinks are not followed: clear() removes them
    as links, never what they point to)."""
    for root, _, _ in os.walk(path):
        if Path(root) != Path(path) and is_marked(Path(root)):
            return Path(root)
    return None


def holds_training(path: Path) -> bool:
    """`finetune train` wrote here (the results folder of `eval --model` holds none of these)."""
    return any((path / name).exists() or (path / name).is_symlink()
               for name in (METRICS_FILE, MODEL_DIR, BEST_DIR, CHECKPOINTS_DIR, STATE_FILE))


def _contents(path: Path) -> list[str]:
    """What a directory holds, the lock file aside (a writer that found it empty may have left one)."""
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)


def _inputs_inside(path: Path, inputs: Sequence[tuple[str, Path]]) -> tuple[str, Path] | None:
    root = path.resolve()
    return next(((what, p) for what, p in inputs if Path(p).resolve().is_relative_to(root)), None)


def start(path: Path, overwrite: bool, inputs: Sequence[tuple[str, Path]], lock) -> None:
    """Make `path` this run's directory, once set-up succeeded (main process only): lock it
    (`lock`: a run_lock.RunLock) if it did not exist when training started, empty it for
    --overwrite, mark it as ours."""
    if not lock.held:
        path.mkdir(parents=True, exist_ok=True)
        lock.acquire(path)
        check_writable(path, overwrite, inputs)  # another run may have written here meanwhile
    if overwrite:
        clear(path)
    write_marker(path)


def claim_results_dir(path: Path, lock) -> None:
    """A directory for results without a training run (`finetune eval --model`): new, empty, or
    one finetune made; locked, and marked as ours."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--output '{path}': is a file, not a directory; choose another path")
    _refuse_inside_a_run(path, "--output")
    entries = _contents(path)
    if entries and not is_marked(path):
        raise RunDirError(
            f"--output '{path}' is not empty and was not created by finetune (it holds "
            f"{', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}); choose an empty or new directory"
        )
    if entries and holds_training(path):  # its config.yaml would be replaced by this one's
        raise RunDirError(f"--output '{path}' holds a training run, which results of --model must not "
                          "change; choose an empty or new directory")
    path.mkdir(parents=True, exist_ok=True)
    lock.acquire(path)
    if not is_marked(path):
        write_marker(path)


def clear(path: Path) -> None:
    """Empty a marked run directory for --overwrite. The directory and its lock file stay, so the
    lock this process holds stays valid; symlinks are removed, never followed."""
    for entry in path.iterdir():
        if entry.name != LOCK_FILE:
            remove(entry)


def remove(path: Path, missing_ok: bool = True) -> None:
    """Delete what stands at `path` in a run directory: a directory with all in it, a file, or a
    symlink, which goes as a link: what it points to (a user's folder, say) is never followed,
    emptied or deleted. (shutil.rmtree refuses a link at the top and unlinks those inside.)"""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    elif not missing_ok:
        raise FileNotFoundError(2, "No such file or directory", str(path))


def unlinked(path: Path) -> Path:
    """`path`, a symlink that stood there removed (the link only): a file finetune then writes in
    place (savefig, write_text) lands in the run, never in what the link pointed to. Anything
    else (a BytesIO a figure is drawn into) is returned as it is."""
    if isinstance(path, (str, os.PathLike)) and Path(path).is_symlink():
        Path(path).unlink()
    return path


def own_dir(path: Path) -> Path:
    """A folder of the run that finetune writes files into (plots/, attention/): made if missing;
    a symlink there is replaced by a folder of the run's own."""
    unlinked(path).mkdir(exist_ok=True)
    return path


def replace_link(path: Path) -> None:
    """Before writing into the file at `path` in place (appending, truncating): a symlink there
    becomes a file of its own holding what the link showed, so the write never reaches the link's
    target (a user's file)."""
    path = Path(path)
    if path.is_symlink():
        content = path.read_bytes() if path.is_file() else b""
        path.unlink()
        path.write_bytes(content)


def require_run(path: Path) -> Path:
    """A directory written by `finetune train` (for eval, predict, merge...)."""
    if not path.is_dir():
        raise RunDirError(f"run directory '{path}' not found; pass the training.output_dir of a run")
    if not (path / CONFIG_FILE).is_file():
        raise RunDirError(f"'{path}' is not a run directory: it has no {CONFIG_FILE}")
    return path


def model_dir(run: Path, checkpoint: str | None = None) -> Path:
    """The saved model to load: the final one, `best`, or a named checkpoint directory."""
    target = run / (checkpoint or MODEL_DIR)
    if checkpoint and checkpoint != BEST_DIR and not target.is_dir():
        target = run / CHECKPOINTS_DIR / checkpoint
    if not target.is_dir() and checkpoint:
        # A running training prunes all but its newest checkpoints: say which ones are there now.
        kept = sorted(p.name for p in (run / CHECKPOINTS_DIR).glob("step-*") if checkpoint_step(p.name) is not None)
        there = ", ".join(([BEST_DIR] if (run / BEST_DIR).is_dir() else []) + kept) or "none yet"
        raise RunDirError(f"'{run}': no checkpoint '{checkpoint}' ({target} is missing); saved in this run: {there}")
    if not target.is_dir():
        raise RunDirError(f"'{run}': no final model found ({target} is missing); was the training run finished?")
    return target
