"""Reading a run's YAML: strict parsing, dotted command-line overrides, and validation errors
that name the key and suggest the likely one."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from finetune.configuration.config import RunConfig
from finetune.configuration.strict_yaml import YamlRefused, load_yaml_text
from finetune.errors import ConfigError


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML file, apply `a.b=value` overrides, validate. Errors are `ConfigError`."""
    raw = read_yaml(path)
    for item in overrides:
        apply_override(raw, item)
    return validate(raw, source=str(path))


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
        raise ConfigError(f"override '{item}': write it as section.key=value, e.g. training.lr=3e-5")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override '{item}': '{part}' is not a section, it holds a value")
        node = child
    node[parts[-1]] = value


def validate(raw: dict[str, Any], source: str) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc.errors()[0])}") from exc


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
    return f"key '{dotted}': {error['msg'].lower()} (got {error.get('input')!r})"


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
