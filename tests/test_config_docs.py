"""docs/config.md is generated from the schema and kept in step with it; its examples are valid."""

from __future__ import annotations

import yaml
from conftest import ROOT, script_module


def _generator():
    return script_module("dev/config_docs")


def test_config_reference_is_up_to_date():
    page = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert page == _generator().render(), "run: python scripts/dev/config_docs.py"


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
