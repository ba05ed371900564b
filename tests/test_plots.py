"""`finetune plot` and the confusion matrix of `finetune eval`."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_cli
from png import assert_png


@pytest.fixture
def run_copy(lora_run, tmp_path):
    """A private copy, so tests that write into the run do not disturb the others."""
    return shutil.copytree(lora_run, tmp_path / "run")


def test_plot_writes_training_and_eval_figures(run_copy):
    result = run_cli("plot", str(run_copy))
    assert result.returncode == 0, result.stderr
    for name in ("train_loss.png", "learning_rate.png", "eval_metrics.png"):
        assert_png(run_copy / "plots" / name)
    assert result.stdout.count("wrote ") == 3


def test_plot_refuses_a_directory_that_is_not_a_run(tmp_path):
    result = run_cli("plot", str(tmp_path))
    assert result.returncode == 2 and "not a run directory" in result.stderr


def test_eval_writes_a_confusion_matrix(run_copy):
    result = run_cli("eval", str(run_copy))
    assert result.returncode == 0, result.stderr
    assert_png(run_copy / "confusion_validation.png")



def test_sampled_and_whole_split_evaluations_are_separate_lines(tmp_path):
    from finetune.views.plots import plot_run, series

    records = [{"type": "eval", "split": "validation", "step": s, "rows": "sample", "samples": 200, "bleu": b}
               for s, b in ((100, 12.9), (200, 18.5))]
    records.append({"type": "eval", "split": "validation", "step": 200, "rows": "whole", "samples": 1014, "bleu": 26.1})
    assert series(records, "bleu") == {"sample (200 rows)": [(100, 12.9), (200, 18.5)], "whole split": [(200, 26.1)]}
    # A run without a sample keeps one line.
    assert series([{"step": 1, "bleu": 3.0}, {"step": 2, "bleu": 4.0}], "bleu") == {None: [(1, 3.0), (2, 4.0)]}

    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    written = plot_run(tmp_path)
    assert [p.name for p in written] == ["eval_metrics.png"]
    assert_png(written[0])


def _drawn_figures(monkeypatch) -> list:
    """Every figure saved from now on (plot files and the report's in-memory PNGs alike)."""
    from matplotlib.figure import Figure

    saved, original = [], Figure.savefig

    def recording(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    return saved


def _whole_split_marked_apart(ax, name: str) -> None:
    lines = {line.get_label(): line for line in ax.get_lines()}
    whole = next(line for label, line in lines.items() if label.endswith("whole split"))
    sample = next(line for label, line in lines.items() if "sample (200 rows)" in label)
    assert list(whole.get_xdata()) == [200] and whole.get_linestyle() == "None"  # a point, not joined
    assert whole.get_marker() == "*" and whole.get_markersize() > 2 * sample.get_markersize()
    assert whole.get_color() != sample.get_color()
    assert list(sample.get_xdata()) == [100, 200]  # the sampled curve does not run into it
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert whole.get_label() in legend and sample.get_label() in legend and name in whole.get_label()


def test_the_final_whole_split_evaluation_is_marked_apart_in_plots_and_report(tmp_path, monkeypatch):
    from finetune.views.plots import plot_run
    from finetune.views.report_figures import training_curves

    records = [{"type": "train", "step": s, "loss": 2.0 / s, "lr": 1e-3} for s in (50, 100, 150, 200)]
    records += [{"type": "eval", "split": "validation", "step": s, "rows": "sample", "samples": 200, "loss": v,
                 "bleu": b} for s, v, b in ((100, 1.5, 12.9), (200, 1.2, 18.5))]
    records.append({"type": "eval", "split": "validation", "step": 200, "rows": "whole", "samples": 1014,
                    "loss": 1.4, "bleu": 26.1})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    figures = _drawn_figures(monkeypatch)
    plot_run(tmp_path)
    [evaluation] = [f for f in figures if f.axes[0].get_title().startswith("evaluation")]
    for ax in evaluation.axes:  # one row per metric: bleu, loss
        _whole_split_marked_apart(ax, "")

    training_curves(records)
    _whole_split_marked_apart(figures[-1].axes[0], "eval loss")
