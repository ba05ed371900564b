"""`finetune report RUN`: RUN/report.html, one self-contained page (CSS and images inside it)
about a run: its config, loss and learning-rate curves, final metrics, the confusion matrix and
the most confident errors (classification) or sample generations (generation), and attention
grids. A part the run has not written yet (no evaluation, no saved model) says so.

report.html is written when absent, or when it is still the file finetune wrote last (its
SHA-256 is recorded in REPORT_RECORD); any other report.html is the user's and is kept."""

from __future__ import annotations

import html
import json
from pathlib import Path
from string import Template

from finetune.errors import FinetuneError, RunDirError
from finetune.storage import run_dir as rd
from finetune.storage.atomic_write import write_text_atomic
from finetune.storage.manifest import sha256_file

SHOWN_ROWS = 10  # rows of the errors and generations tables


def write_report(run: Path, cfg) -> Path:
    from finetune.saved.saved_model import verified_model_dir

    target = run / rd.REPORT_FILE
    _check_ours(target)
    if (run / rd.MODEL_DIR).is_dir():  # a damaged model stops the report (its attention part reads it)
        verified_model_dir(run)
    page = Template((Path(__file__).parents[1] / "resources" / "report" / "report.html").read_text(encoding="utf-8"))
    text = page.substitute(_sections(run, cfg))
    write_text_atomic(target, text)
    write_text_atomic(run / rd.REPORT_RECORD, json.dumps({"sha256": sha256_file(target)}) + "\n")
    return target


def _check_ours(target: Path) -> None:
    if not target.exists() and not target.is_symlink():
        return
    try:
        recorded = json.loads((target.parent / rd.REPORT_RECORD).read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    if target.is_symlink() or not target.is_file() or sha256_file(target) != recorded:
        raise RunDirError(f"'{target}': exists and is not the report finetune wrote last (yours, or edited "
                          "since); move or rename it, then run `finetune report` again")


def _sections(run: Path, cfg) -> dict[str, str]:
    from finetune.training.tracking import read_metrics
    from finetune.views import report_figures

    split = cfg.data.eval_split
    predictions = _read_jsonl(run / rd.predictions_file(split))
    records = read_metrics(run / rd.METRICS_FILE) if (run / rd.METRICS_FILE).is_file() else []
    classifies = cfg.task in ("sentiment", "classification")
    finished = (run / rd.MODEL_DIR).is_dir()
    sections = {
        "name": html.escape(run.resolve().name),
        "status": html.escape(f"{run.resolve()}: " + ("finished, final model saved" if finished else
                                                      "no final model: still training, or stopped early")),
        "config": html.escape((run / rd.CONFIG_FILE).read_text(encoding="utf-8")),
        "curves": _image(report_figures.training_curves(records), "loss and learning rate")
        if any(r.get("type") == "train" for r in records) else _missing("no training steps logged yet"),
        "metrics": _metrics(run / rd.eval_file(split), split),
        "errors": "",
    }
    if predictions is None:
        sections.update(outcomes_title="Confusion matrix" if classifies else "Sample generations",
                        outcomes=_missing(f"not evaluated: no {rd.predictions_file(split)} yet"))
    elif classifies:
        sections.update(outcomes_title="Confusion matrix",
                        outcomes=_image(report_figures.confusion_matrix(predictions), "confusion matrix"),
                        errors=_errors(predictions))
    else:
        sections.update(outcomes_title="Sample generations", outcomes=_table(
            ["source", "reference", "generated"],
            [[p["source"], " | ".join(p["references"]), p["generated"]] for p in predictions[:SHOWN_ROWS]]))
    sections["attention"] = _attention(run, cfg, predictions, finished)
    return sections


def _metrics(path: Path, split: str) -> str:
    if not path.is_file():
        return _missing(f"not evaluated: no {path.name} yet")
    metrics = json.loads(path.read_text(encoding="utf-8"))
    rows = [[name, f"{value:.4g}" if isinstance(value, float) else value] for name, value in metrics.items()]
    return f"<p>split <code>{html.escape(split)}</code></p>" + _table(["metric", "value"], rows)


def _errors(predictions: list[dict]) -> str:
    wrong = sorted((p for p in predictions if p["label"] != p["predicted"]), key=lambda p: -p["probability"])
    body = (_table(["text", "label", "predicted", "probability"],
                   [[p["text"], p["label"], p["predicted"], f"{p['probability']:.3f}"] for p in wrong[:SHOWN_ROWS]])
            if wrong else "<p>no errors on this split</p>")
    return f'<section id="errors"><h2>Most confident errors</h2>\n{body}</section>'


def _attention(run: Path, cfg, predictions: list[dict] | None, finished: bool) -> str:
    """Every head of the last layer, for the first evaluated example (a generation run's
    decoder reads what the model generated for it)."""
    from finetune.saved.saved_model import load_run_model
    from finetune.views.attention.heatmaps import head_grid
    from finetune.views.attention.one_text import text_attention
    from finetune.views.report_figures import data_uri
    from finetune.views.sparse_attention_maps import SPARSE_FAMILIES

    if not finished:
        return _missing("not available: the run has no final model yet")
    if not predictions:
        return _missing("not evaluated: the grids show the first evaluated example")
    first = predictions[0]
    try:
        task, tokenizer, model = load_run_model(run, cfg)
        sparse = model.config.model_type in SPARSE_FAMILIES  # LED: maps of its encoder only
        target = first.get("generated") if task.generates and not sparse else None
        maps, tokens = text_attention(task, tokenizer, model, first.get("text") or first["source"], target)
    except FinetuneError as error:  # e.g. a family without maps: the rest of the report still stands
        return _missing(f"not available: {error}")
    parts = []
    for kind, probs in maps.items():
        last = probs.shape[0] - 1
        title = f"{'' if kind == 'self' else kind + ' '}attention, layer {last} (layers and heads from 0)"
        parts.append(_image(data_uri(lambda out, p=probs[last], t=tokens[kind], title=title: head_grid(p, *t, title, out)),
                            title))
    return "\n".join(parts)


def _read_jsonl(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _missing(text: str) -> str:
    return f'<p class="missing">{html.escape(text)}</p>'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"
