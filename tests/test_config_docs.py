"""docs/config.md is generated from the schema and kept in step with it; its examples are valid."""

from __future__ import annotations

import importlib.util

import yaml
from conftest import ROOT


def _generator():
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "scripts" / "config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_is_up_to_date():
    page = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert page == _generator().render(), "run: python scripts/config_docs.py"


def test_every_field_is_documented_and_examples_validate():
    from finetune.config import RunConfig, validate

    page = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    for name, field in RunConfig.model_fields.items():
        for key in getattr(field.annotation, "model_fields", {}):
            assert f"`{name}.{key}`" in page, f"{name}.{key}"
    merged = {}
    for text in _generator().EXAMPLES.values():
        merged.update(yaml.safe_load(text))
    validate(merged, source="docs/config.md examples")
