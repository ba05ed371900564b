"""The run report's figures, drawn in memory and returned as `data:image/png;base64,...` URIs,
so the page carries its images inside and opens without the run directory or a network."""

from __future__ import annotations

import base64
import io

from finetune.metrics.confusion_figure import confusion_matrix_png
from finetune.views.plots import _is_number, _pyplot, draw_series, series


def data_uri(draw) -> str:
    """`draw(target)` writes a PNG into the file object it is given."""
    buffer = io.BytesIO()
    draw(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def training_curves(records: list[dict]) -> str:
    """Train and eval loss on one plot, the learning rate below it on the same step axis (the
    warmup shows as its ramp)."""
    plt = _pyplot()
    fig = curves_figure(plt, records)
    uri = data_uri(lambda target: fig.savefig(target, dpi=90, format="png"))
    plt.close(fig)
    return uri


def curves_figure(plt, records: list[dict]):
    """The figure of `training_curves`. An evaluation of the whole split at the end (after
    evaluations of a sample) is its own marked point, not the sampled curve's last step."""
    fig, (losses, rates) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, height_ratios=(2, 1))
    train = [(r["step"], r["loss"]) for r in records if r.get("type") == "train" and _is_number(r.get("loss"))]
    if train:
        losses.plot(*zip(*train), "-", label="train loss")
    draw_series(losses, series([r for r in records if r.get("type") == "eval"], "loss"), "eval loss")
    losses.set_ylabel("loss")
    losses.legend()
    losses.grid(alpha=0.3)
    lr = [(r["step"], r["lr"]) for r in records if r.get("type") == "train" and _is_number(r.get("lr"))]
    if lr:
        rates.plot(*zip(*lr), color="tab:green")
    rates.set_ylabel("learning rate")
    rates.set_xlabel("optimizer step")
    rates.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix(records: list[dict]) -> str:
    labels = sorted({r["label"] for r in records} | {r["predicted"] for r in records})
    return data_uri(lambda target: confusion_matrix_png(records, labels, target))
