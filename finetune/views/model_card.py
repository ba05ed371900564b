"""README.md in the Hugging Face model-card format for every run: YAML front matter the Hub
reads (base model, data, metrics), then hyperparameters and how to load the model.

Built from the resolved config and the final metrics only, never from the environment, so no
token can leak into it; URL credentials in names are masked all the same, and local paths are
written relative to the run directory."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from finetune.storage import run_dir as rd
from finetune.configuration.config import RunConfig
from finetune.model.shared_names import shared_name

PIPELINE_TAGS = {
    "sentiment": "text-classification", "classification": "text-classification",
    "translation": "translation", "summarization": "summarization",
}
_SECRETS = [re.compile(r"(?<=://)[^/@\s]+@"), re.compile(r"\bhf_[A-Za-z0-9]{10,}")]


def _mask(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub("***@" if "://" in pattern.pattern else "***", text)
    return text


def render(cfg: RunConfig, auto_class: str, metrics: dict, seconds: float, steps: int, run: Path,
           processes: int = 1, stopped_early: str = "") -> str:
    lora = cfg.lora.enabled
    name = run.resolve().name
    base = _mask(shared_name(cfg.model.name_or_path, run))
    dataset = _mask(shared_name(cfg.data.dataset, run)) if cfg.data.dataset else None
    pipeline_tag = PIPELINE_TAGS.get(cfg.task, cfg.task)
    scores = {k: v for k, v in metrics.items() if k not in ("samples", "eval_seconds") and isinstance(v, (int, float))}
    front = {
        "base_model": base,
        **({"datasets": [dataset]} if dataset else {}),
        "library_name": "peft" if lora else "transformers",
        "pipeline_tag": pipeline_tag,
        "tags": ["finetune", cfg.task, pipeline_tag] + (["lora", "peft"] if lora else []),
        "model-index": [{
            "name": name,
            "results": [{
                "task": {"type": pipeline_tag, "name": cfg.task},
                "dataset": {"name": dataset or "local files", "type": dataset or "json",
                            "split": cfg.data.eval_split},
                "metrics": [{"type": k, "value": round(float(v), 4), "name": f"{cfg.data.eval_split} {k}"}
                            for k, v in scores.items()],
            }],
        }],
    }
    t, lo = cfg.training, cfg.lora
    rows = [("task", cfg.task), ("optimizer steps", steps), ("batch size (per process)", t.batch_size),
            ("gradient accumulation", t.gradient_accumulation_steps), ("processes", processes),
            ("global batch size", global_batch(cfg, processes)), ("learning rate", t.lr),
            ("scheduler", f"{t.scheduler}, warmup {t.warmup_ratio}"), ("weight decay", t.weight_decay),
            ("max grad norm", t.max_grad_norm), ("mixed precision", t.mixed_precision), ("seed", t.seed),
            ("max length", cfg.data.max_length)]
    if stopped_early:
        rows.append(("early stopping", stopped_early))
    if lora:
        rows.append(("LoRA", f"r={lo.r}, alpha={lo.alpha}, dropout={lo.dropout}, targets={lo.target_modules}"))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    results = "\n".join(f"| {k} | {v:.4f} |" for k, v in scores.items()) or "| (none) | |"
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {name}

`{base}` fine-tuned for {cfg.task} with finetune ({"LoRA adapter" if lora else "full fine-tune"}).
Training took {seconds / 60:.1f} minutes. The full configuration is in `{rd.CONFIG_FILE}`, per-step
metrics in `{rd.METRICS_FILE}`.

## Results on `{cfg.data.eval_split}` ({metrics.get("samples", "?")} examples)

| metric | value |
|---|---|
{results}

## Training hyperparameters

| setting | value |
|---|---|
{table}

## How to use

{_usage(auto_class, pipeline_tag, base, lora)}
"""


def _usage(auto_class: str, pipeline_tag: str, base: str, lora: bool) -> str:
    if lora:
        return f"""The `{rd.MODEL_DIR}/` directory holds a LoRA adapter; load it on top of the base model:

```python
from peft import PeftModel
from transformers import {auto_class}, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{rd.MODEL_DIR}")
base = {auto_class}.from_pretrained("{base}", config="{rd.MODEL_DIR}")  # {rd.MODEL_CONFIG_FILE} carries the labels
model = PeftModel.from_pretrained(base, "{rd.MODEL_DIR}")
```

or fold it into the base weights and use a plain pipeline:

```
finetune merge . merged
```
```python
from transformers import pipeline
pipe = pipeline("{pipeline_tag}", model="merged")
```"""
    return f"""```python
from transformers import {auto_class}, AutoTokenizer, pipeline

model = {auto_class}.from_pretrained("{rd.MODEL_DIR}")
tokenizer = AutoTokenizer.from_pretrained("{rd.MODEL_DIR}")
pipe = pipeline("{pipeline_tag}", model="{rd.MODEL_DIR}")
```"""


def global_batch(cfg: RunConfig, processes: int) -> int:
    """Examples per optimizer step, over all processes."""
    return cfg.training.batch_size * cfg.training.gradient_accumulation_steps * processes


def write_model_card(run: Path, cfg: RunConfig, auto_class: str, metrics: dict, seconds: float, steps: int,
                     processes: int = 1, stopped_early: str = "") -> None:
    card = render(cfg, auto_class, metrics, seconds, steps, run, processes, stopped_early)
    (run / rd.CARD_FILE).write_text(card, encoding="utf-8")
    if (run / rd.MODEL_DIR).is_dir():  # the directory one would upload to the Hub
        (run / rd.MODEL_DIR / rd.CARD_FILE).write_text(card, encoding="utf-8")
