"""Is a saved model directory (RUN/model, RUN/best, RUN/merged, a checkpoint) whole, before
anything in it is loaded? A damaged file must stop a command with one line naming it, never
load as something else (a tokenizer without its vocabulary scores every row alike).

finetune seals each saved model with its manifest (every file's size and SHA-256, as in
checkpoints) and a record saying it did (SEAL_RECORD), so a lost manifest is told from a model
saved by an older finetune. Such an older model still loads, after one warning line, once the
files it needs are there and hold what their format says (JSON parses, a safetensors file is as
long as its header says): the manifest is what catches a file altered or swapped for another's.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

from finetune.errors import RunDirError
from finetune.storage.safetensors_only import refuse_pickles
from finetune.storage import manifest
from finetune.storage import run_dir as rd

SEAL_RECORD = "finetune_saved_model.json"  # {"format": 1, "manifest": MANIFEST_FILE}
# One of these holds the vocabulary (tokenizer_config.json alone makes an empty tokenizer).
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model",
                    "sentencepiece.bpe.model")
TOKENIZER_CONFIG = "tokenizer_config.json"
# Read when present: checked for their format like the required files.
OPTIONAL_FILES = ("generation_config.json", "special_tokens_map.json", "added_tokens.json", "merges.txt")


def seal(directory: Path, name: str) -> None:
    """Write the record, then the manifest (last: it lists the record too). `name`: the
    directory's final name (it may still be a temporary one)."""
    write_record(directory)
    manifest.write(directory, name, skip=(rd.CARD_FILE,))  # a card may be edited before `finetune push`


def write_record(directory: Path) -> None:
    (directory / SEAL_RECORD).write_text(json.dumps({"format": 1, "manifest": rd.MANIFEST_FILE}) + "\n",
                                         encoding="utf-8")


def check(directory: Path) -> None:
    """Raise RunDirError naming the first damaged or missing file of the saved model in
    `directory`; warn (one line on stderr) when it was saved without a manifest."""
    where = f"saved model '{directory}'"
    refuse_pickles(directory, where)
    state = _state(directory)
    if _checked.get(directory.resolve()) == state:
        return  # checked already in this process (a command reads the config, then the model), unchanged since
    sealed = is_sealed(directory)
    if sealed and (problem := manifest.problem(directory)):
        raise RunDirError(f"{where} is damaged: {problem}; {_remedy(directory)}")
    for name in _required(directory):
        if not (directory / name).is_file():
            raise RunDirError(f"{where} is damaged: {name} is missing; {_remedy(directory)}")
    for name in _required(directory) + [n for n in OPTIONAL_FILES if (directory / n).exists()]:
        if problem := _format_problem(directory / name):
            raise RunDirError(f"{where} is damaged: {name} {problem}; {_remedy(directory)}")
    _checked[directory.resolve()] = state
    if not sealed:
        print(f"warning: {where} has no {rd.MANIFEST_FILE} (saved by an older finetune): its files are there "
              "and well-formed, but an altered or swapped file cannot be detected", file=sys.stderr)


_checked: dict[Path, tuple] = {}


def _state(directory: Path) -> tuple:
    """Each file's name, inode, size and modification time: any write or rename changes it."""
    stats = ((p.name, p.stat()) for p in sorted(directory.iterdir()) if p.is_file())
    return tuple((name, st.st_ino, st.st_size, st.st_mtime_ns) for name, st in stats)


def is_sealed(directory: Path) -> bool:
    """finetune saved it with a manifest (the record or the manifest is there: the other may be lost)."""
    return (directory / rd.MANIFEST_FILE).exists() or (directory / SEAL_RECORD).exists()


def _required(directory: Path) -> list[str]:
    """What a saved model cannot load without: its config, weights and tokenizer files."""
    if holds_adapter(directory):
        config = rd.MODEL_CONFIG_FILE if (directory / rd.MODEL_CONFIG_FILE).is_file() else rd.ADAPTER_BASE_CONFIG_FILE
        names = [config, rd.ADAPTER_CONFIG_FILE, rd.ADAPTER_WEIGHTS_FILE]
    else:
        index = directory / (rd.MODEL_WEIGHTS_FILE + ".index.json")
        names = [rd.MODEL_CONFIG_FILE] + (sorted(_shards(index)) if index.is_file() else [rd.MODEL_WEIGHTS_FILE])
    vocabulary = next((n for n in VOCABULARY_FILES if (directory / n).is_file()), "tokenizer.json")
    return names + [TOKENIZER_CONFIG, vocabulary]


def holds_adapter(directory: Path) -> bool:
    """An adapter's files are there (one may be lost: any of them tells an adapter from a full model)."""
    adapter_files = (rd.ADAPTER_CONFIG_FILE, rd.ADAPTER_WEIGHTS_FILE, rd.ADAPTER_BASE_CONFIG_FILE)
    return any((directory / name).is_file() for name in adapter_files)


def _shards(index: Path) -> set[str]:
    try:
        return set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {index.name}  # unreadable: _format_problem names it


def _format_problem(path: Path) -> str | None:
    """What is wrong with a JSON or safetensors file's own format (truncation shows here)."""
    if not path.is_file():
        return None
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"is not valid JSON ({str(exc).splitlines()[0][:80]}): truncated or replaced"
    elif path.suffix == ".safetensors":
        return _safetensors_problem(path)
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if 8 + header_size > size:
                return f"has {size} bytes, fewer than its header says: truncated"
            header = json.loads(handle.read(header_size))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return "is not a safetensors file: truncated or replaced"
    if 8 + header_size + end != size:
        return f"has {size} bytes, its header says {8 + header_size + end}: truncated or replaced"
    return None


def _remedy(directory: Path) -> str:
    if directory.parent.name == rd.CHECKPOINTS_DIR:
        return "choose another checkpoint (--checkpoint)"
    if directory.name == rd.MERGED_DIR:
        return "run `finetune merge` again into a new directory"
    return "restore it from a copy, or use another checkpoint (--checkpoint best or step-N) or train again"
