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
    from finetune.configuration.config import RunConfig
    from finetune.configuration.loading import validate

    page = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")

    def leaves(prefix, section):
        for key, sub in section.model_fields.items():
            nested = getattr(sub.annotation, "model_fields", None)
            yield from leaves(f"{prefix}.{key}", sub.annotation) if nested else [f"{prefix}.{key}"]

    for name, field in RunConfig.model_fields.items():
        if hasattr(field.annotation, "model_fields"):
            for dotted in leaves(name, field.annotation):
                assert f"`{dotted}`" in page, dotted
    merged = {}
    for text in _generator().EXAMPLES.values():
        merged.update(yaml.safe_load(text))
    validate(merged, source="docs/config.md examples")
