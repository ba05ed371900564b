"""saved_model.py: a model directory written by `write` loads back with `load` as the same
model, with its label names; a directory without its model config is refused naming it."""

from __future__ import annotations

import shutil

import pytest

TEXTS = ["Great value, would buy again.", "The lid cracked on the first day."]


def test_a_written_adapter_loads_back_as_the_same_model(lora_run, tmp_path):
    import torch

    from finetune.saved import saved_model
    from finetune.configuration.loading import load_config
    from finetune.tasks import get_task

    cfg = load_config(lora_run / "config.yaml")
    task, tokenizer, model = saved_model.load_run_model(lora_run, cfg)
    copy = tmp_path / "copy"
    copy.mkdir()
    saved_model.write(model, tokenizer, task, copy)
    assert saved_model.is_adapter(copy) and not (copy / "model.safetensors").exists()

    fresh = get_task(cfg, saved_model.saved_config(copy))
    reloaded = saved_model.load(cfg, fresh, copy).eval()
    assert fresh.spec.label_names == ["negative", "positive"]  # restored from the saved config
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_a_model_directory_without_its_config_is_refused(lora_run, tmp_path):
    from finetune.saved import saved_model
    from finetune.errors import RunDirError

    broken = shutil.copytree(lora_run / "model", tmp_path / "model")
    (broken / "base_model_config.json").unlink()
    with pytest.raises(RunDirError, match="has no config.json; the run is incomplete"):
        saved_model.saved_config(broken)


def test_a_run_written_before_base_model_config_json_still_loads_and_merges(lora_run, tmp_path, capsys, monkeypatch):
    """Older finetune kept an adapter's model config as config.json; eval, predict and merge read both."""
    import json

    from conftest import main_in_process

    old = shutil.copytree(lora_run, tmp_path / "old-run")
    for model_dir in (old / "model", old / "best"):
        (model_dir / "base_model_config.json").rename(model_dir / "config.json")
        for name in ("manifest.json", "finetune_saved_model.json"):  # older finetune wrote neither
            (model_dir / name).unlink(missing_ok=True)
    answers = []
    for run in (lora_run, old):
        code, out, err = main_in_process(["predict", str(run), TEXTS[0]], capsys, monkeypatch)
        assert code == 0, err
        answers.append(json.loads(out))
    assert answers[0] == answers[1]
    code, _, err = main_in_process(["merge", str(old)], capsys, monkeypatch)
    assert code == 0, err
    merged = json.loads((old / "merged" / "config.json").read_text())
    assert merged["id2label"] == {"0": "negative", "1": "positive"}


def _publish_copy(directory):
    """What a training run's save does to `directory`: a whole new copy renamed into place."""
    import os

    fresh = shutil.copytree(directory, directory.with_name(".tmp-" + directory.name))
    os.replace(directory, directory.with_name(".old-" + directory.name))
    os.replace(fresh, directory)
    shutil.rmtree(directory.with_name(".old-" + directory.name))


def test_a_load_that_a_save_replaced_midway_is_retried_from_the_new_directory(lora_run, tmp_path, monkeypatch):
    from finetune.configuration.loading import load_config
    from finetune.saved import saved_model

    run = shutil.copytree(lora_run, tmp_path / "run")
    cfg = load_config(run / "config.yaml")
    real, seen = saved_model._load_from, []

    def replaced_during_the_first_load(source, cfg):
        seen.append(source.stat().st_ino)
        loaded = real(source, cfg)
        if len(seen) == 1:
            _publish_copy(source)
        return loaded

    monkeypatch.setattr(saved_model, "_load_from", replaced_during_the_first_load)
    task, tokenizer, model = saved_model.load_run_model(run, cfg, "best")
    assert len(seen) == 2 and seen[0] != seen[1] and seen[1] == (run / "best").stat().st_ino
    assert model.config.num_labels == 2

    seen.clear()
    monkeypatch.setattr(saved_model, "_load_from", lambda source, cfg: (seen.append(1), _publish_copy(source)))
    with pytest.raises(Exception, match=r"was replaced 3 times while it was loading"):
        saved_model.load_run_model(run, cfg, "best")
    assert len(seen) == 3


def test_a_real_load_error_is_not_retried_and_a_missing_checkpoint_lists_the_saved_ones(lora_run, tmp_path,
                                                                                       monkeypatch):
    from finetune.configuration.loading import load_config
    from finetune.errors import RunDirError
    from finetune.saved import saved_model

    run = shutil.copytree(lora_run, tmp_path / "run")
    cfg = load_config(run / "config.yaml")
    calls = []

    def broken(source, cfg):
        calls.append(source)
        raise ValueError("unreadable weights")

    monkeypatch.setattr(saved_model, "_load_from", broken)
    with pytest.raises(ValueError, match="unreadable weights"):
        saved_model.load_run_model(run, cfg, "best")
    assert len(calls) == 1  # the directory did not change: nothing to retry

    kept = ["step-000004", "step-000008"]  # what a run still training may have kept so far
    for name in kept + [".tmp-step-000012"]:
        (run / "checkpoints" / name).mkdir(parents=True)
    with pytest.raises(RunDirError) as refused:
        saved_model.load_run_model(run, cfg, "step-999999")
    assert str(refused.value) == (f"'{run}': no checkpoint 'step-999999' ({run / 'checkpoints' / 'step-999999'} is "
                                  f"missing); saved in this run: best, {', '.join(kept)}")
    shutil.rmtree(run / "best")  # best/ lives in the run itself, never under checkpoints/
    with pytest.raises(RunDirError) as refused:
        saved_model.load_run_model(run, cfg, "best")
    assert f"({run / 'best'} is missing); saved in this run: {', '.join(kept)}" in str(refused.value)
