"""PNG figures of a run: training loss, learning rate and evaluation metrics over steps (from
metrics.jsonl); the confusion matrix is metrics/confusion_figure.py's."""

from __future__ import annotations

from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.errors import RunDirError
from finetune.metrics.confusion_figure import _pyplot

WHOLE_SPLIT = "whole split"  # the legend of the final evaluation on every row
_NOT_METRICS = {"type", "split", "step", "epoch", "time", "samples", "eval_seconds", "rows"}


def plot_run(run: Path) -> list[Path]:
    from finetune.training.tracking import read_metrics

    path = run / rd.METRICS_FILE
    if not path.is_file():
        raise RunDirError(f"'{run}': has no {rd.METRICS_FILE}; was the training run started?")
    records = read_metrics(path)
    train = [r for r in records if r.get("type") == "train"]
    evals = [r for r in records if r.get("type") == "eval"]
    if not train and not evals:
        raise RunDirError(f"'{path}': holds no logged steps yet; plot it once training has logged")
    out = rd.own_dir(run / rd.PLOTS_DIR)
    written = []
    if train:
        written.append(_line_plot(train, ["loss"], "training loss", out / rd.LOSS_PLOT))
        written.append(_line_plot(train, ["lr"], "learning rate", out / rd.LR_PLOT))
    names = sorted({k for r in evals for k, v in r.items() if k not in _NOT_METRICS and _is_number(v)})
    if names:
        written.append(_line_plot(evals, names, f"evaluation ({evals[0].get('split', '')})",
                                  out / rd.EVAL_PLOT))
    return written


def _line_plot(records: list[dict], keys: list[str], title: str, target: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(len(keys), 1, figsize=(6, 2.6 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        lines = series(records, key)
        draw_series(ax, lines)
        if len(lines) > 1:
            ax.legend(fontsize="small")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("optimizer step")
    fig.tight_layout()
    fig.savefig(rd.unlinked(target), dpi=100)
    plt.close(fig)
    return target


def series(records: list[dict], key: str) -> dict[str | None, list[tuple]]:
    """(step, value) lines of one metric. A run that evaluates a sample of the split during
    training and the whole split at the end logs both (`rows`): the two are not one curve, or a
    sample-to-whole difference would show as a jump at the last step."""
    lines: dict[str | None, list[tuple]] = {}
    for r in records:
        if _is_number(r.get(key)):
            rows = r.get("rows")
            label = None if rows is None else (WHOLE_SPLIT if rows == "whole" else f"sample ({r.get('samples')} rows)")
            lines.setdefault(label, []).append((r["step"], r[key]))
    return lines


def draw_series(ax, lines: dict[str | None, list[tuple]], name: str = "") -> None:
    """The lines of `series` on `ax`, labelled `name, label`. The final whole-split evaluation is
    one point, not part of the sampled curve: a large star in its own colour, unjoined."""
    for label, points in lines.items():
        whole = label == WHOLE_SPLIT
        shown = ", ".join(part for part in (name, label) if part) or None
        style = dict(linestyle="none", marker="*", markersize=14, color="tab:red", zorder=3) if whole else \
            dict(marker="o", markersize=3)
        ax.plot([p[0] for p in points], [p[1] for p in points], label=shown, **style)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
