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
