"""Reading a run's YAML: strict parsing, dotted command-line overrides, and validation errors
that name the key and suggest the likely one."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from finetune.configuration.config import RunConfig
from finetune.configuration.round_trip import Unwritable, check_round_trip, check_values
from finetune.configuration.strict_yaml import MAX_DEPTH, YamlRefused, load_yaml_text
from finetune.errors import ConfigError


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML file, apply `a.b=value` overrides, validate, and check that the result can be
    written back as config.yaml. Errors are `ConfigError`, naming the override or the file the
    bad value came from."""
    raw = read_yaml(path)
    for item in overrides:
        apply_override(raw, item)
    source = _Sources(str(path), overrides)
    try:
        check_values(raw)
    except Unwritable as exc:
        raise ConfigError(f"{source.of(exc.path)}: key '{'.'.join(exc.path)}': {exc}") from None
    cfg = validate(raw, source=source)
    try:
        check_round_trip(cfg)
    except Unwritable as exc:
        key = f"key '{'.'.join(exc.path)}': " if exc.path else ""
        raise ConfigError(f"{source.of(exc.path)}: {key}{exc}") from None
    return cfg


class _Sources:
    """Which input set a key: the last override that set it (or a section above or below it),
    else the file."""

    def __init__(self, file: str, overrides) -> None:
        self.file = file
        self.overrides = [(item.partition("=")[0].split("."), item) for item in overrides]

    def of(self, path: list[str]) -> str:
        for key, item in reversed(self.overrides):
            shared = min(len(key), len(path))
            if path and key[:shared] == [str(p) for p in path[:shared]]:
                return f"override {_shown(item)}"
        return self.file

    def named_in(self, message: str) -> str:
        """For a check across keys (no single key in its location): the last override whose key
        the message names, else the file."""
        for key, item in reversed(self.overrides):
            if re.search(rf"(?<![\w.]){re.escape('.'.join(key))}(?![\w])", message):
                return f"override {_shown(item)}"
        return self.file


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file; pass the YAML file to --config")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path passed to --config")
    try:
        raw = load_yaml_text(path.read_text(encoding="utf-8"))
    except YamlRefused as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply to be a config; check the brackets") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error at {where}: {problem}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file; a config is YAML text") from exc
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; start from a recipe (finetune recipes copy quickstart)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (task:, model:, data: ...)")
    return raw


def apply_override(raw: dict[str, Any], item: str) -> None:
    """`training.lr=3e-5` sets raw['training']['lr'] = 3e-5 (the value is parsed as YAML)."""
    key, sep, text = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {_shown(item)}: write it as section.key=value, e.g. training.lr=3e-5")
    parts = key.split(".")
    if len(parts) > MAX_DEPTH:
        raise ConfigError(f"override {_shown(item)}: nested too deeply (more than {MAX_DEPTH} levels); a config needs far fewer")
    try:  # the loader files are read with: duplicate keys, deep nesting, unsafe tags refused
        value = load_yaml_text(text, aliases=False) if text else ""
    except YamlRefused as exc:
        raise ConfigError(f"override {_shown(item)}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"override {_shown(item)}: nested too deeply to be a config value") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"override {_shown(item)}: the value is not valid YAML ({problem}); quote text that holds "
            f"': ', '#' or brackets, e.g. {key}='\"...\"'"
        ) from None
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {_shown(item)}: '{part}' is not a section, it holds a value")
        node = child
    node[parts[-1]] = value


def _shown(item: str) -> str:
    """An override as an error quotes it: on one line, and not the whole of a huge one."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in item)
    return shown if len(shown) <= 200 else shown[:200] + "..."


def validate(raw: dict[str, Any], source: "str | _Sources") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        if isinstance(source, _Sources):
            loc = [str(p) for p in error["loc"]]
            where = source.of(loc) if loc else source.named_in(str(error["msg"]))
        else:
            where = source
        raise ConfigError(f"{where}: {_describe(error)}") from exc


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    dotted = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = _did_you_mean(loc)
        return f"unknown key '{dotted}'{hint}"
    if kind == "missing":
        return f"missing required key '{dotted}'"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"key '{dotted}' must be one of {expected}, got {error.get('input')!r}"
    hint = ""
    if kind == "string_type" and isinstance(error.get("input"), (dict, list)):  # `Q: {source}` is a mapping to YAML
        hint = f"; YAML reads it as a {'mapping' if isinstance(error['input'], dict) else 'list'}; quote the text"
    return f"key '{dotted}': {error['msg'].lower()} (got {error.get('input')!r}){hint}"


def _did_you_mean(loc: list[str]) -> str:
    """Suggest the closest field of the section the unknown key sits in."""
    section: type[BaseModel] | None = RunConfig
    for part in loc[:-1]:
        field = section.model_fields.get(part) if section else None
        annotation = field.annotation if field else None
        section = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if section is None:
        return ""
    names = list(section.model_fields)
    close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{'.'.join(loc[:-1] + close)}'?"
    return f"; valid keys here: {', '.join(names)}"


def default_output_dir(config_path: str | Path) -> str:
    return str(Path("runs") / Path(config_path).stem)
