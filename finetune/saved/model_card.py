"""README.md in the Hugging Face model-card format, built with huggingface_hub's ModelCard: front
matter the Hub reads (base model, license, data, metrics, model-index), then results,
hyperparameters and how to load the model (card_usage.py).

Built from the resolved config and the final metrics only, never from the environment, so no
token can leak into it; URL credentials in names are masked all the same. Local paths never
reach the front matter (`base_model` and `datasets` take Hub ids only); the text names them
relative to the run directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

from finetune.configuration.config import RunConfig
from finetune.model.shared_names import is_hub_id, shared_name
from finetune.storage import run_dir as rd
from finetune.saved.card_usage import MODEL_ID_LINE, Base, usage

PIPELINE_TAGS = {
    "sentiment": "text-classification", "classification": "text-classification",
    "translation": "translation", "summarization": "summarization",
}
USAGE_HEADING = "## How to use"
_SECRETS = [re.compile(r"(?<=://)[^/@\s]+@"), re.compile(r"\bhf_[A-Za-z0-9]{10,}")]


def _mask(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub("***@" if "://" in pattern.pattern else "***", text)
    return text


def card_data(cfg: RunConfig, name: str, metrics: dict, library: str, base_license: str | None = None):
    """The front matter. `license`: model.license, else the base model's when its card names one,
    else left out (the Hub then shows none)."""
    from huggingface_hub import EvalResult, ModelCardData

    pipeline_tag = PIPELINE_TAGS.get(cfg.task, cfg.task)
    dataset = cfg.data.dataset if cfg.data.dataset and not cfg.data.files and is_hub_id(cfg.data.dataset) else None
    scores = _scores(metrics)
    results = [EvalResult(task_type=pipeline_tag, task_name=cfg.task, dataset_type=dataset or "json",
                          dataset_name=dataset or "local files", dataset_split=cfg.data.eval_split,
                          metric_type=k, metric_value=round(float(v), 4), metric_name=f"{cfg.data.eval_split} {k}")
               for k, v in scores.items()]
    base = cfg.model.name_or_path
    return ModelCardData(
        base_model=_mask(base) if is_hub_id(base) and cfg.model.init == "pretrained" else None,
        license=cfg.model.license or base_license,
        datasets=[_mask(dataset)] if dataset else None,
        metrics=list(scores) or None,
        library_name=library,
        pipeline_tag=pipeline_tag,
        tags=["finetune", cfg.task, pipeline_tag] + (["lora", "peft"] if library == "peft" else []),
        model_name=name,
        eval_results=results or None,
    )


def _scores(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("samples", "eval_seconds") and isinstance(v, (int, float))}


def render(cfg: RunConfig, task, metrics: dict, seconds: float, steps: int, run: Path, processes: int = 1,
           stopped_early: str = "", labels: list[str] | None = None) -> str:
    """The card of a run's model directory (`labels`: a classifier's names, in id order)."""
    from huggingface_hub import ModelCard

    lora = cfg.lora.enabled
    name = run.resolve().name
    data = card_data(cfg, name, metrics, "peft" if lora else "transformers", base_model_license(cfg))
    origin = _mask(shared_name(cfg.model.name_or_path, run))
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
    results = "\n".join(f"| {k} | {v:.4f} |" for k, v in _scores(metrics).items()) or "| (none) | |"
    body = f"""# {name}

`{origin}` fine-tuned for {cfg.task} with finetune ({"LoRA adapter" if lora else "full fine-tune"}).
{_provenance(cfg, data, run)}
Training took {seconds / 60:.1f} minutes. The full configuration is in `{rd.CONFIG_FILE}`, per-step
metrics in `{rd.METRICS_FILE}` (both in the run directory).

## Results on `{cfg.data.eval_split}` ({metrics.get("samples", "?")} examples)

| metric | value |
|---|---|
{results}

## Training hyperparameters

| setting | value |
|---|---|
{table}

{USAGE_HEADING}

{usage(task.kind, _base(cfg, run) if lora else None, rd.MODEL_DIR, labels, prompt_around(task))}
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def _base(cfg: RunConfig, run: Path) -> Base:
    """The adapter's base model as the card's code loads it: the name the config gave (a local
    path made relative to the run directory, credentials masked)."""
    return Base(_mask(shared_name(cfg.model.name_or_path, run)), cfg.model.gguf_file, cfg.model.revision)


def _provenance(cfg: RunConfig, data, run: Path) -> str:
    """What the front matter cannot say: a base model or data that is not on the Hub, the license."""
    lines = []
    if cfg.model.init == "scratch":
        lines.append("The base model was built from that config with random weights.")
    elif data.base_model is None:
        lines.append("The base model is not on the Hub: a local path, relative to the run directory.")
    if not data.datasets:
        files = ", ".join(f"{split}: `{Path(path).name}`" for split, path in cfg.data.files.items())
        lines.append(f"Data: local files ({files})." if files else "Data: not a Hub dataset.")
    if data.license is None:
        lines.append("License: not stated (set `model.license`; the base model's card names none).")
    return "\n".join(lines)


def prompt_around(task) -> tuple[str, str, str]:
    """(template text before, source prefix, template text after) each input, as evaluation
    wrapped it: decoder-only models fill the prompt template (decoder_only.py tokenizes the same
    three pieces), encoder-decoders only take the prefix."""
    if task.kind == "classification":
        return "", "", ""
    prefix = task.spec.data.source_prefix
    if task.kind == "seq2seq":
        return "", prefix, ""
    source_lang, target_lang = task.spec.languages()
    filled = task.spec.template().format(source="\x00", source_lang=source_lang, target_lang=target_lang)
    before, _, after = filled.partition("\x00")
    return before, prefix, after


def base_model_license(cfg: RunConfig) -> str | None:
    """The license in the base model's own card: a local directory's README.md, or a Hub model's
    as cached by an earlier download (nothing is fetched)."""
    from huggingface_hub import ModelCard, try_to_load_from_cache

    from finetune.configuration.paths import resolve

    name = resolve(cfg.model.name_or_path, "model.name_or_path")
    local = Path(name) / rd.CARD_FILE
    try:  # a name that is no repo id, an unreadable card: no reason to fail a finished run
        path = local if local.is_file() else (
            try_to_load_from_cache(name, rd.CARD_FILE, revision=cfg.model.revision) if is_hub_id(name) else None)
        return ModelCard.load(path, ignore_metadata_errors=True).data.license if isinstance(path, (str, Path)) else None
    except (OSError, ValueError):
        return None


def global_batch(cfg: RunConfig, processes: int) -> int:
    """Examples per optimizer step, over all processes."""
    return cfg.training.batch_size * cfg.training.gradient_accumulation_steps * processes


def pointed_at(card: str, ref: str) -> str:
    """The card with its usage code loading `ref` (a Hub repo id) instead of a run's directory."""
    line = re.compile("^" + re.escape(MODEL_ID_LINE).replace(re.escape("{}"), '[^"\\n]*') + "$", re.M)
    return line.sub(MODEL_ID_LINE.format(ref), card, count=1)


def merged_card(run: Path, cfg: RunConfig, task, source: Path, out: Path, labels: list[str] | None) -> str:
    """The card of `finetune merge`'s output (`source`: the adapter merged): the run's card as a
    transformers model, its usage loading the merged directory (relative to the run, like the
    run's own)."""
    from huggingface_hub import ModelCard

    name = run.resolve().name
    if (run / rd.CARD_FILE).is_file():
        card = ModelCard.load(run / rd.CARD_FILE, ignore_metadata_errors=True)
        data, head = card.data, card.text.split(USAGE_HEADING)[0].strip()
    else:  # a run that never finished writing its card
        data, head = card_data(cfg, name, {}, "transformers", base_model_license(cfg)), f"# {name}"
    data.library_name = "transformers"
    data.tags = [tag for tag in data.tags or [] if tag not in ("lora", "peft")] + ["merged"]
    ref, adapter = (Path(os.path.relpath(p.resolve(), run.resolve())).as_posix() for p in (out, source))
    body = f"""{head}

Merged by `finetune merge` from the LoRA adapter in `{name}/{adapter}/`: its weights are folded
into the base model's, so this directory loads with transformers alone, without peft.

{USAGE_HEADING}

{usage(task.kind, None, ref, labels, prompt_around(task))}
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def label_names(model_config, task) -> list[str] | None:
    """A classifier's label names in id order, from its saved config."""
    if task.kind != "classification":
        return None
    return [model_config.id2label[i] for i in sorted(model_config.id2label)]


def write_model_card(run: Path, cfg: RunConfig, task, metrics: dict, seconds: float, steps: int,
                     processes: int = 1, stopped_early: str = "") -> None:
    """The card in the run directory and in its model/ (the directory `finetune push` uploads)."""
    from finetune.saved.saved_model import saved_config

    labels = label_names(saved_config(run / rd.MODEL_DIR), task)
    card = render(cfg, task, metrics, seconds, steps, run, processes, stopped_early, labels)
    rd.unlinked(run / rd.CARD_FILE).write_text(card, encoding="utf-8")  # a symlink's target is never written
    rd.unlinked(run / rd.MODEL_DIR / rd.CARD_FILE).write_text(card, encoding="utf-8")
