"""Load a Hub or local dataset into named splits; tokenize with a cache keyed on everything
that changes the result.

Task-specific work (which columns, how to tokenize) lives in `finetune.tasks`; this module only
knows files, splits and caching.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from finetune.configuration.config import DataSection
from finetune.errors import DataError
from finetune.data import cache_entries
from finetune.data import file_checks
from finetune.data.file_checks import explain_read_failure, scan
from finetune.data.text_cut import CHARS_PER_TOKEN
from finetune.configuration.paths import resolve

SplitCheck = Callable[[Any, str], None]  # (dataset split, its name): raises DataError

EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
}


def load_splits(data: DataSection, seed: int, *, need_train: bool = True, check: SplitCheck | None = None):
    """Return a DatasetDict holding `data.train_split` (if needed) and `data.eval_split`.

    When the eval split is absent it is carved from train by `validation_fraction` and `seed`.
    `max_*_samples` are applied here so every task sees the same rows. `check(split, name)` runs
    on every split as read, before carving or shuffling, so the row numbers it reports are the
    file's.
    """
    from datasets import DatasetDict

    raw = _read(data)
    if check:
        for name, split in raw.items():
            check(split, name)
    splits = dict(raw)
    if data.eval_split not in splits:
        if data.train_split not in splits:
            raise DataError(_missing_split_message(data, data.eval_split, splits))
        carved = splits[data.train_split].train_test_split(
            test_size=data.validation_fraction, seed=seed
        )
        splits[data.train_split], splits[data.eval_split] = carved["train"], carved["test"]
    wanted = [data.eval_split] + ([data.train_split] if need_train else [])
    out = {}
    for name in wanted:
        if name not in splits:
            raise DataError(_missing_split_message(data, name, splits))
        split = splits[name]
        if len(split) == 0:
            raise DataError(f"{source_name(data, name)}: split '{name}' is empty; it needs at least one row")
        limit = data.max_train_samples if name == data.train_split else data.max_eval_samples
        if name == data.train_split and limit:
            # Shuffle before cutting: a file sorted by label must not give a one-label slice.
            split = split.shuffle(seed=seed).select(range(min(limit, len(split))))
        elif limit:
            split = split.select(range(min(limit, len(split))))
        out[name] = split
    return DatasetDict(out)


def load_split(data: DataSection, split: str, check: SplitCheck | None = None):
    """One named split (for `finetune eval --split`), read alone: the other splits' files are not
    opened. `data.max_eval_samples` caps only `data.eval_split`, as it did in training; another
    split is scored whole. Returns the rows and a line saying which were kept."""
    if data.files and split in data.files:
        data = data.model_copy(update={"files": {split: data.files[split]}})
    raw = _read(data)
    if split not in raw:
        raise DataError(_missing_split_message(data, split, dict(raw)))
    ds = raw[split]
    if len(ds) == 0:
        raise DataError(f"{source_name(data, split)}: split '{split}' is empty; it needs at least one row")
    if check:
        check(ds, split)
    total = len(ds)
    if split == data.eval_split and data.max_eval_samples and data.max_eval_samples < total:
        ds = ds.select(range(data.max_eval_samples))
        return ds, f"the first {len(ds)} of {total} rows (data.max_eval_samples)"
    return ds, f"all {total} rows"


def require_columns(ds, columns: list[str], data: DataSection, split: str, role: str = "") -> None:
    missing = [c for c in columns if c and c not in ds.column_names]
    if missing:
        raise DataError(
            f"{source_name(data, split)}: column '{missing[0]}' not found{role}; the data has columns "
            f"{ds.column_names}: set the matching data.*_column key"
        )


def _read(data: DataSection):
    from datasets import load_dataset

    cache_entries.start_reading()
    if data.files:
        fmt, builder, kwargs = _local_builder(data)
        try:
            return _load_local(data, builder, kwargs)
        except Exception as exc:  # pyarrow / pandas parse errors come in many types
            for split, path in local_files(data).items():
                reason = explain_read_failure(Path(path), fmt)
                if reason:
                    raise DataError(f"data.files.{split}: '{path}' {reason}") from exc
            clash = _type_clash_between_files(builder, kwargs, local_files(data))
            if clash:
                raise DataError(clash) from exc
            raise DataError(
                f"{_files_text(data)}: could not read as {fmt}: "
                f"{_first_line(exc)}; check the file format (data.format)"
            ) from exc
    try:
        return load_dataset(data.dataset, data.config_name, revision=data.revision)
    except Exception as exc:
        raise DataError(
            f"data.dataset '{data.dataset}': could not load from the Hub ({_first_line(exc)}); "
            "check the id and your network, or point data.files at local files"
        ) from exc


def _load_local(data: DataSection, builder: str, kwargs: dict):
    """The files as parsed by `datasets`, cached under finetune's cache keyed by their SHA-256.
    (`datasets` alone keys a local file by its path and modification time, so a file rewritten
    with its old mtime would be read as its stale rows.) The key becomes the builder's config
    name, so each split's fingerprint, and with it the tokenized-data cache key, follows the
    content too."""
    from datasets import load_dataset

    files = local_files(data)
    key = cache_entries.content_key(
        files={split: cache_entries.sha256_file(path) for split, path in files.items()},
        builder=builder, options=kwargs,
    )
    name = f"files-{key[:20]}"
    entry = cache_root(data) / "datasets" / name

    def load():
        with _library_errors_silenced():
            return load_dataset(builder, name, data_files=files, cache_dir=str(entry), **kwargs)

    def files_of(splits):
        return [f["filename"] for split in splits.values() for f in split.cache_files]

    # The library writes this entry under its own lock: with several processes an entry without
    # a record yet may be one being written right now.
    return cache_entries.reuse_or_rebuild(entry, key, load, files_of, unrecorded_is_damage=False)


def _type_clash_between_files(builder: str, kwargs: dict, files: dict[str, str]) -> str | None:
    """The files are read together, so a column must have one type in all of them: labels 0/1 in
    train and names in validation fail inside pyarrow with a message naming neither. Read each
    file alone (only after that failure) and name the column and the two files that disagree."""
    from datasets import load_dataset

    seen: dict[str, tuple[str, str]] = {}  # column -> (its type, the file that first had it)
    for split, path in files.items():
        try:
            with _library_errors_silenced(), tempfile.TemporaryDirectory() as scratch:
                features = load_dataset(builder, data_files={split: path}, cache_dir=scratch,
                                        **kwargs)[split].features
        except Exception:  # this file alone is unreadable: the general message applies
            return None
        for column, feature in features.items():
            kind = _kind(feature)
            where = f"data.files.{split} ('{path}')"
            first_kind, first_where = seen.setdefault(column, (kind, where))
            if first_kind != kind:
                return (f"column '{column}' holds {first_kind} in {first_where} but {kind} in {where}; "
                        "make the files agree (one column, one type: all numbers or all text)")
    return None


def _kind(feature) -> str:
    dtype = getattr(feature, "dtype", "")
    if dtype in ("string", "large_string"):
        return "text"
    if dtype.startswith(("int", "uint", "float", "bool")):
        return "numbers"
    return f"values of type {feature}"


@contextlib.contextmanager
def _library_errors_silenced():
    """datasets logs a parse error before raising it; our one-line message replaces both."""
    from datasets.utils import logging as ds_logging

    previous = ds_logging.get_verbosity()
    ds_logging.set_verbosity(ds_logging.CRITICAL)
    try:
        yield
    finally:
        ds_logging.set_verbosity(previous)


def local_files(data: DataSection) -> dict[str, str]:
    return {split: resolve(path, f"data.files.{split}") for split, path in data.files.items()}


def _local_builder(data: DataSection) -> tuple[str, str, dict[str, Any]]:
    """(format, datasets builder, its options) of the local files, after checking each file."""
    formats = set()
    for split, path in local_files(data).items():
        p = Path(path)
        if p.is_dir():
            raise DataError(f"data.files.{split}: '{path}' is a directory; give the data file inside it")
        if not p.is_file():
            raise DataError(f"data.files.{split}: file '{path}' not found; check the path")
        if p.stat().st_size == 0:
            raise DataError(f"data.files.{split}: file '{path}' is empty")
        fmt = data.format
        if fmt == "auto":
            fmt = EXTENSION_FORMATS.get("".join(p.suffixes[-1:]).lower())
            if p.suffix == ".gz":
                fmt = EXTENSION_FORMATS.get(Path(p.stem).suffix.lower())
            if fmt is None:
                raise DataError(
                    f"data.files.{split}: cannot tell the format of '{path}' from its extension; "
                    "set data.format to csv, tsv, json, jsonl or parquet"
                )
        if fmt != "parquet" and p.suffix != ".gz":
            line, too_long = scan(p)
            if line is not None:
                raise DataError(
                    f"data.files.{split}: '{path}' is not UTF-8 text (line {line} holds bytes that "
                    "do not decode); save the file as UTF-8"
                )
            if too_long is not None:
                raise DataError(
                    f"data.files.{split}: '{path}' line {too_long[0]} is longer than "
                    f"{_size(file_checks.MAX_LINE_BYTES)}, too much to read in memory; shorten that row "
                    f"(a text is cut to its token limit × {CHARS_PER_TOKEN} characters anyway)"
                    + (", or write the file as JSON Lines, one row per line" if fmt == "json" else "")
                )
        formats.add(fmt)
    if len(formats) > 1:
        raise DataError(f"data.files: mixed formats {sorted(formats)}; use one format for all splits")
    fmt = formats.pop()
    # pandas reads an empty cell, "NA" or "null" as a missing value; in a text column they are
    # text (an empty string is legal text), and an empty label is caught by the label check.
    as_text = {"keep_default_na": False}
    if fmt == "tsv":
        # TSV files rarely quote fields; QUOTE_NONE keeps stray quotes as text (SST-2 has them).
        return fmt, "csv", {"delimiter": "\t", "quoting": 3, **as_text}
    if fmt == "csv":
        return fmt, "csv", as_text
    if fmt == "jsonl":
        return fmt, "json", {}
    return fmt, fmt, {}


def _size(count: int) -> str:
    return f"{count >> 20} MB" if count >= 1 << 20 else f"{count} bytes"


def _missing_split_message(data: DataSection, split: str, splits: dict) -> str:
    key = "data.eval_split" if split == data.eval_split else "data.train_split"
    return (
        f"{source_name(data)}: no split named '{split}' (found: {sorted(splits)}); "
        f"set {key} or add data.files.{split}"
    )


def source_name(data: DataSection, split: str | None = None) -> str:
    if data.files:
        if split and split in data.files:
            return data.files[split]
        return _files_text(data)
    return f"dataset '{data.dataset}'"


def _files_text(data: DataSection) -> str:
    return ", ".join(data.files.values())


def _first_line(exc: BaseException) -> str:
    # datasets wraps the reader's error in "An error occurred while generating the dataset";
    # the cause (pandas' "Expected 2 fields in line 3") is the part that helps.
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- cache


def cache_root(data: DataSection) -> Path:
    if data.cache_dir:
        return Path(data.cache_dir).expanduser()
    return Path(os.environ.get("FINETUNE_CACHE", Path.home() / ".cache" / "finetune"))


def tokenizer_fingerprint(tokenizer) -> str:
    """Changes when the vocabulary, normalisation or special tokens change."""
    parts = [type(tokenizer).__name__, str(tokenizer.padding_side), str(tokenizer.pad_token)]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        # Truncation and padding are per-call settings the tokenizer remembers; not identity.
        state.pop("truncation", None)
        state.pop("padding", None)
        parts.append(json.dumps(state, sort_keys=True))
    else:
        parts.append(json.dumps(tokenizer.get_vocab(), sort_keys=True))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cached_map(ds, fn: Callable, *, key: dict[str, Any], data: DataSection, remove_columns=None):
    """`ds.map(fn, batched=True)` stored under a name derived from `key` plus the dataset's own
    fingerprint (which follows the data files' content, see `_load_local`, and the rows taken
    from them), so a change of data, tokenizer, length or columns makes a new cache entry. The
    entry is checked against its record before it is read (`cache_entries`)."""
    material = json.dumps({"dataset": ds._fingerprint, "cache_format": 2, **key}, sort_keys=True, default=str)
    digest = hashlib.sha256(material.encode()).hexdigest()[:20]
    root = cache_root(data)
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"tokenized-{digest}.arrow"

    def tokenize():
        return ds.map(
            fn,
            batched=True,
            remove_columns=remove_columns if remove_columns is not None else ds.column_names,
            cache_file_name=str(entry),
            load_from_cache_file=True,
            new_fingerprint=digest,
            desc="Tokenizing",
        )

    def files_of(mapped):
        return [f["filename"] for f in mapped.cache_files]

    # datasets moves a finished file into place, and other processes read it only once the main
    # one is done: an entry without a record is a write cut short.
    return cache_entries.reuse_or_rebuild(entry, digest, tokenize, files_of, unrecorded_is_damage=True)
