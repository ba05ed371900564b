"""`finetune eval`: a checkpoint's results beside the final model's, the rows each file scored,
one split read alone, and the zero-shot baseline of a model that was never trained here."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import main_in_process, sentiment_yaml, write_config


@pytest.fixture
def run_copy(lora_run, tmp_path):
    return shutil.copytree(lora_run, tmp_path / "run")


def _read(path):
    return json.loads(path.read_text())


def test_a_checkpoint_keeps_its_own_results(run_copy, capsys, monkeypatch):
    final = (run_copy / "eval_validation.json").read_bytes()
    code, out, err = main_in_process(["eval", str(run_copy), "--checkpoint", "best"], capsys, monkeypatch)
    assert code == 0, err
    scored = _read(run_copy / "eval_validation.best.json")
    assert scored["weights"] == "best" and scored["rows"] == "all 120 rows"
    assert "eval_validation.best.json" in out
    # The best model scores what training recorded when it kept it.
    assert scored["accuracy"] == pytest.approx(_read(run_copy / "best" / "best.json")["value"])
    assert (run_copy / "predictions_validation.best.jsonl").is_file()
    assert (run_copy / "confusion_validation.best.png").is_file()
    assert (run_copy / "eval_validation.json").read_bytes() == final


def test_the_training_eval_cap_applies_to_its_own_split_only(run_copy, capsys, monkeypatch):
    cap = "data.max_eval_samples=50"
    code, _, err = main_in_process(["eval", str(run_copy), "--split", "train", cap], capsys, monkeypatch)
    assert code == 0, err
    train = _read(run_copy / "eval_train.json")
    assert train["samples"] == 480 and train["rows"] == "all 480 rows"
    code, _, err = main_in_process(["eval", str(run_copy), cap], capsys, monkeypatch)
    assert code == 0, err
    validation = _read(run_copy / "eval_validation.json")
    assert validation["samples"] == 50
    assert validation["rows"] == "the first 50 of 120 rows (data.max_eval_samples)"


def test_a_split_is_read_without_the_other_files(run_copy, sentiment_files, tmp_path, capsys, monkeypatch):
    test = shutil.copy(sentiment_files["validation"], tmp_path / "test.jsonl")
    gone = tmp_path / "moved-away.jsonl"  # the training files are no longer there
    code, _, err = main_in_process(
        ["eval", str(run_copy), "--split", "test", f"data.files.test={test}",
         f"data.files.train={gone}", f"data.files.validation={gone}"], capsys, monkeypatch)
    assert code == 0, err
    assert _read(run_copy / "eval_test.json")["samples"] == 120


def test_zero_shot_scores_the_model_as_it_is(tiny_bert, sentiment_files, tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml("not-used-with---model", sentiment_files))
    out = tmp_path / "zero-shot"
    args = ["eval", "--model", str(tiny_bert), "--config", str(cfg), "--output", str(out)]
    code, _, err = main_in_process(args, capsys, monkeypatch)
    assert code == 0, err
    metrics = _read(out / "eval_validation.json")
    assert metrics["samples"] == 120 and metrics["weights"] == f"{tiny_bert} (as released)"
    records = [json.loads(line) for line in (out / "predictions_validation.jsonl").read_text().splitlines()]
    right = sum(r["label"] == r["predicted"] for r in records)
    assert len(records) == 120 and metrics["accuracy"] == pytest.approx(right / 120)
    code, _, err = main_in_process(args, capsys, monkeypatch)  # again, into the folder it made
    assert code == 0, err
    assert _read(out / "eval_validation.json")["accuracy"] == metrics["accuracy"]  # a seeded head


@pytest.mark.parametrize("extra,message", [
    (["RUN"], "give one or the other"),
    ([], "give --config"),
])
def test_zero_shot_mistakes_are_one_line(tiny_bert, tmp_path, capsys, monkeypatch, extra, message):
    args = ["eval", "--model", str(tiny_bert)] + [str(tmp_path) if e == "RUN" else e for e in extra]
    code, _, err = main_in_process(args, capsys, monkeypatch)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_zero_shot_never_writes_into_a_folder_it_did_not_make(tiny_bert, sentiment_files, tmp_path, capsys,
                                                               monkeypatch):
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml("x", sentiment_files))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = main_in_process(["eval", "--model", str(tiny_bert), "--config", str(cfg), "--output", str(mine)],
                                   capsys, monkeypatch)
    assert code == 2 and "was not created by finetune" in err, err
    assert os.listdir(mine) == ["notes.txt"]


def test_weights_gone_once_loaded_are_still_scored(run_copy, capsys, monkeypatch):
    # A training run beside eval replaces best/ (and prunes checkpoints) whenever it saves: the
    # weights eval already loaded may be gone by the time it names them in its results.
    from finetune.saved import saved_model

    real_load = saved_model.load_run_model

    def load_then_replace(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        (run_copy / "best").rename(run_copy / ".best-being-replaced")
        return loaded

    monkeypatch.setattr(saved_model, "load_run_model", load_then_replace)
    code, _, err = main_in_process(["eval", str(run_copy), "--checkpoint", "best"], capsys, monkeypatch)
    assert code == 0, err
    assert _read(run_copy / "eval_validation.best.json")["weights"] == "best"
