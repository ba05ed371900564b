"""`finetune config schema`: the run config as a JSON schema an editor can use."""

from __future__ import annotations

from typing import Any

from finetune.configuration.config import RunConfig


SCHEMA_ID = "urn:finetune:run-config:1"  # names this schema's version; nothing is fetched from it


def schema() -> dict[str, Any]:
    """The JSON schema of a run's YAML, with `$schema`/`$id` so editors (VS Code's YAML
    extension: `# yaml-language-server: $schema=finetune.schema.json`) validate and complete it."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **RunConfig.model_json_schema()}
