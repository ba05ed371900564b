"""`finetune plot` and the confusion matrix of `finetune eval`."""

from __future__ import annotations

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

