"""Trackers come from Accelerate; the tracker's own environment variables win over our defaults,
and one that cannot start is a one-line error naming it."""

from __future__ import annotations

import pytest

from finetune.errors import ConfigError
from finetune.training.trackers import flat_params, start_trackers


def test_mlflow_tracking_uri_from_the_environment_wins_over_the_run_directory(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    elsewhere = (tmp_path / "team-store").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    run = tmp_path / "run"
    run.mkdir()
    [tracker] = start_trackers(["mlflow"], run, {"training": {"lr": 0.5}})
    tracker.log({"train/loss": 1.25}, step=3)
    tracker.finish()
    client = MlflowClient(tracking_uri=elsewhere)
    [logged] = client.search_runs([client.get_experiment_by_name("team").experiment_id])
    assert logged.data.params == {"training.lr": "0.5"}
    assert [(m.step, m.value) for m in client.get_metric_history(logged.info.run_id, "train/loss")] == [(3, 1.25)]
    assert not (run / "mlruns").exists()


def test_a_tracker_that_cannot_start_is_a_config_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "store").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")  # MLflow 3 refuses its file store then
    with pytest.raises(ConfigError, match="training.report_to 'mlflow' could not start"):
        start_trackers(["mlflow"], tmp_path, {})


def test_the_config_is_flattened_to_scalars_for_hyperparameter_tables():
    assert flat_params({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": "x"}) == {
        "a.b": 1, "a.c": "[1, 2]", "d": "null", "e": "x"}


def test_a_resumed_run_logs_on_into_the_same_mlflow_run(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    # MLflow copies the URI it is set to into the environment: set then delete, so that the
    # teardown removes it again and no later test's subprocess inherits this store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)  # restored after
    run = tmp_path / "run"
    run.mkdir()
    for step, resuming in ((3, False), (5, True)):  # the first sitting, then `train --resume`
        [tracker] = start_trackers(["mlflow"], run, {"training": {"lr": 0.5, "epochs": step}}, resuming)
        tracker.log({"train/loss": 1.0 / step}, step=step)
        tracker.finish()
    client = MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    [logged] = client.search_runs([client.get_experiment_by_name("finetune").experiment_id])
    assert [m.step for m in client.get_metric_history(logged.info.run_id, "train/loss")] == [3, 5]
    assert logged.data.params["training.epochs"] == "3"  # the parameters it started with

    # A fresh start in the same directory (after --overwrite) is a new run.
    [tracker] = start_trackers(["mlflow"], run, {}, resuming=False)
    tracker.finish()
    assert len(client.search_runs([client.get_experiment_by_name("finetune").experiment_id])) == 2

    # A hand-edited file that is not a table of ids starts a new run rather than a traceback.
    for content in ("[1, 2]", '{"mlflow": 7}', "not json"):
        (run / "trackers.json").write_text(content)
        [tracker] = start_trackers(["mlflow"], run, {}, resuming=True)
        tracker.finish()
    assert len(client.search_runs([client.get_experiment_by_name("finetune").experiment_id])) == 5

    # A store that lost the run: one line that says what to do. (A fresh process reads the
    # environment; this one must forget the run directory's store it was set to above.)
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "other-store").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    with pytest.raises(ConfigError, match="could not continue run .* delete that file"):
        start_trackers(["mlflow"], run, {}, resuming=True)
