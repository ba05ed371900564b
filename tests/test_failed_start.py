"""A run that fails before its first step leaves no half-made run directory: a new one is
removed (with the parents it made), a folder that was there is left as it was, and a run an
--overwrite was replacing comes back whole. Failures are provoked after the directory is claimed
(a tracker that cannot start, a NaN in the first step) and before it (a model that is missing)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from conftest import main_in_process, sentiment_yaml

from finetune.training.loop import NAN_TEST_ENV


def _config(tmp_path: Path, model, files, out: Path, **training) -> Path:
    settings = {"output_dir": str(out), "max_steps": 2, "batch_size": 8, "log_every": 1, **training}
    path = tmp_path / "run.yaml"
    path.write_text(sentiment_yaml(model, files) + yaml.safe_dump({"training": settings}), encoding="utf-8")
    return path


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _broken_tracker(monkeypatch, tmp_path):
    """MLflow refuses its file store without MLFLOW_ALLOW_FILE_STORE: its start() fails."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "store").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")
    return {"report_to": ["mlflow"]}


def _nan_in_first_step(monkeypatch, tmp_path):
    monkeypatch.setenv(NAN_TEST_ENV, "1")
    return {}


FAILURES = {"tracker-cannot-start": (_broken_tracker, "training.report_to 'mlflow' could not start"),
            "nan-in-first-step": (_nan_in_first_step, "NaN or infinite at step 1")}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_new_run_that_fails_before_its_first_step_leaves_no_directory(
        tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, failure):
    provoke, message = FAILURES[failure]
    out = tmp_path / "runs" / "nested" / "run"  # runs/ and runs/nested/ are made by the run too
    cfg = _config(tmp_path, tiny_bert, sentiment_files, out, **provoke(monkeypatch, tmp_path))
    code, _, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 2 and message in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("failure", [*FAILURES, "model-missing"])
def test_a_folder_that_was_there_is_left_as_it_was(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch,
                                                   failure):
    out = tmp_path / "empty"
    out.mkdir()
    if failure == "model-missing":
        cfg = _config(tmp_path, tmp_path / "no-model", sentiment_files, out)
    else:
        cfg = _config(tmp_path, tiny_bert, sentiment_files, out, **FAILURES[failure][0](monkeypatch, tmp_path))
    code, _, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 2, err
    assert out.is_dir() and list(out.iterdir()) == []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_bert, sentiment_files):
    root = tmp_path_factory.mktemp("finished")
    out = root / "run"
    cfg = _config(root, tiny_bert, sentiment_files, out, save_every=1)
    from conftest import run_cli

    result = run_cli("train", "--config", str(cfg), env={"FINETUNE_CACHE": str(root / "cache")})
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("failure", FAILURES)
def test_overwrite_that_fails_before_its_first_step_keeps_the_run_it_was_replacing(
        tmp_path, finished_run, tiny_bert, sentiment_files, capsys, monkeypatch, failure):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run, out, symlinks=True)
    before = _snapshot(out)
    provoke, message = FAILURES[failure]
    cfg = _config(tmp_path, tiny_bert, sentiment_files, out, **provoke(monkeypatch, tmp_path))
    code, _, err = main_in_process(["train", "--config", str(cfg), "--overwrite"], capsys, monkeypatch)
    assert code == 2 and message in err, err
    assert _snapshot(out) == before  # every file, the lock file's content included
    assert sorted(p.name for p in out.iterdir()) == sorted({Path(k).parts[0] for k in before})


def test_overwrite_that_trains_replaces_the_run_and_parks_nothing(tmp_path, finished_run, tiny_bert, sentiment_files,
                                                                  capsys, monkeypatch):
    import shutil

    from finetune.storage import run_dir as rd

    out = tmp_path / "run"
    shutil.copytree(finished_run, out, symlinks=True)
    old_id = rd.run_id(out)
    cfg = _config(tmp_path, tiny_bert, sentiment_files, out, max_steps=1)
    code, _, err = main_in_process(["train", "--config", str(cfg), "--overwrite"], capsys, monkeypatch)
    assert code == 0, err
    assert rd.run_id(out) != old_id and not (out / rd.REPLACED_DIR).exists()
    assert not (out / rd.CHECKPOINTS_DIR).exists()  # the old run's checkpoints went with it


def test_a_resume_that_fails_before_its_first_step_leaves_the_run_intact(
        tmp_path, finished_run, tiny_bert, sentiment_files, capsys, monkeypatch):
    import shutil

    from finetune.storage import run_dir as rd

    out = tmp_path / "run"
    shutil.copytree(finished_run, out, symlinks=True)
    before = {k: v for k, v in _snapshot(out).items() if k != rd.LOCK_FILE}
    cfg = _config(tmp_path, tiny_bert, sentiment_files, out, max_steps=4, save_every=1,
                  **_broken_tracker(monkeypatch, tmp_path))
    code, _, err = main_in_process(["train", "--config", str(cfg), "--resume"], capsys, monkeypatch)
    assert code == 2 and "could not start" in err, err
    assert {k: v for k, v in _snapshot(out).items() if k != rd.LOCK_FILE} == before


def test_a_tracker_failing_after_it_started_is_one_line_and_leaves_no_directory(
        tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    """TensorBoard started, then refused the run's parameters: a config error naming it, not a
    traceback, and the run directory it was writing into is gone."""
    from accelerate.tracking import TensorBoardTracker

    def refuse(self, values):
        raise ValueError("hparams refused")

    monkeypatch.setattr(TensorBoardTracker, "store_init_configuration", refuse)
    out = tmp_path / "run"
    cfg = _config(tmp_path, tiny_bert, sentiment_files, out, report_to=["tensorboard"])
    code, _, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: training.report_to 'tensorboard' could not start")
    assert not out.exists()
