"""Checkpoints run no code, are verified before use, and resume only what they were trained on:
a planted pickle is never unpickled, a damaged newest checkpoint is moved aside and the run
continues bit-exactly from the one before, a kill while the manifest is written loses nothing,
and a changed learning rate reaches the schedule."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal

import pytest
import yaml
from conftest import main_in_process, run_cli
from test_bad_inputs import base_config, planted_pickle
from test_train_state import _config, _logged_step, _max_difference, _metrics, _start, _wait_for, _weights

# Every name Accelerate's save_state used: none of them may be opened by --resume.
OLD_NAMES = ["random_states_0.pkl", "custom_checkpoint_0.pkl", "optimizer.bin", "scheduler.bin",
             "pytorch_model.bin", "sampler.bin", "scaler.pt"]


def _run_main(args, capsys, monkeypatch) -> tuple[int, str]:
    code, _, err = main_in_process(args, capsys, monkeypatch)
    return code, err


@pytest.fixture
def four_steps(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    """A finished 4-step run with checkpoints at steps 2 and 4, trained in this process."""
    cfg = base_config(tmp_path, tiny_bert, sentiment_files)
    cfg["training"].update(max_steps=4, save_every=2, log_every=1)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    code, err = _run_main(["train", "--config", str(config)], capsys, monkeypatch)
    assert code == 0, err
    return config, tmp_path / "run"


def test_planted_pickles_are_never_unpickled(four_steps, capsys, monkeypatch):
    config, run = four_steps
    marker = run.parent / "PWNED"
    step = run / "checkpoints" / "step-000004"
    for name in OLD_NAMES:  # beside a verified checkpoint: refused (safetensors only), never loaded
        (step / name).write_bytes(planted_pickle(marker))
    code, err = _run_main(["train", "--config", str(config), "--resume", "training.max_steps=5"], capsys, monkeypatch)
    assert code == 2 and "requires safetensors" in err and min(OLD_NAMES) in err, err
    assert not marker.exists()
    for name in OLD_NAMES:
        (step / name).unlink()

    (step / "manifest.json").unlink()  # what an older finetune wrote: refused, nothing loaded
    state = json.loads((step / "train_state.json").read_text())
    del state["format"]
    (step / "train_state.json").write_text(json.dumps(state))
    for other in (run / "checkpoints").glob("step-*"):
        if other != step:
            shutil.rmtree(other)
    code, err = _run_main(["train", "--config", str(config), "--resume", str(step)], capsys, monkeypatch)
    assert code == 2 and "older finetune" in err and "pickle" in err
    assert not marker.exists()


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.safetensors", "train_state.json", "rng_0.safetensors"])
def test_damaged_newest_checkpoint_is_moved_aside_and_the_run_continues_exactly(
    four_steps, capsys, monkeypatch, damaged
):
    config, run = four_steps
    reference = _weights(run / "model")
    path = run / "checkpoints" / "step-000004" / damaged
    path.write_bytes(path.read_bytes()[:-7])  # truncated
    code, err = _run_main(["train", "--config", str(config), "--resume"], capsys, monkeypatch)
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and damaged in warning[0] and "step-000004.damaged" in warning[0]
    assert "resuming from step-000002" in warning[0]
    assert (run / "checkpoints" / "step-000004.damaged" / damaged).is_file()  # kept to inspect
    # Steps 3-4 trained again from step 2 give the same weights: no state was lost or mixed.
    assert _max_difference(reference, _weights(run / "model")) == 0.0


def test_kill_while_the_manifest_is_written_then_resume_is_bit_exact(tmp_path, tiny_bert, sentiment_files):
    settings = {"max_steps": 6, "save_every": 2}
    reference = tmp_path / "reference"
    cfg = _config(tmp_path / "ref.yaml", tiny_bert, sentiment_files, reference, **settings)
    assert run_cli("train", "--config", str(cfg)).returncode == 0

    run = tmp_path / "killed"
    cfg = _config(tmp_path / "killed.yaml", tiny_bert, sentiment_files, run, **settings)
    proc = _start("train", "--config", str(cfg), env={"FINETUNE_TEST_STALL_MANIFEST": "step-000004:120"})
    partial = run / "checkpoints" / ".tmp-step-000004" / ".manifest.json.tmp"
    _wait_for(partial.is_file, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [p.name for p in (run / "checkpoints").glob("step-*")] == ["step-000002"]

    result = run_cli("train", "--config", str(cfg), "--resume")
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout and "step-000002" in result.stdout
    assert _max_difference(_weights(reference / "model"), _weights(run / "model")) == 0.0
    assert _metrics(run) == _metrics(reference)


def test_a_new_learning_rate_on_resume_reaches_the_schedule(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    cfg = base_config(tmp_path, tiny_bert, sentiment_files)
    cfg["training"].update(max_steps=2, save_every=2, log_every=1, lr=1.0e-3, scheduler="linear")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert _run_main(["train", "--config", str(config)], capsys, monkeypatch)[0] == 0

    args = ["train", "--config", str(config), "--resume", "training.lr=4.0e-3", "training.max_steps=4"]
    code, err = _run_main(args, capsys, monkeypatch)
    assert code == 0, err
    logged = {r["step"]: r["lr"] for r in _metrics(tmp_path / "run") if r["type"] == "train"}
    # Linear decay over the new 4 steps from the new peak: after step 3, a quarter of it is left.
    assert logged[3] == pytest.approx(4.0e-3 * (4 - 3) / 4, rel=1e-6)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["training"]["lr"] == 4.0e-3


def test_the_interruption_advice_works_as_printed(tmp_path, tiny_bert, sentiment_files):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "run.yaml", tiny_bert, sentiment_files, run, max_steps=12, save_every="null",
                  eval_each_epoch="false")
    proc = _start("train", "--config", str(cfg))
    _wait_for(lambda: _logged_step(run) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    advised = re.search(r"continue with: (finetune .*)$", stderr.strip().splitlines()[-1])
    assert advised, stderr
    result = run_cli(*shlex.split(advised.group(1))[1:])  # exactly as printed, `finetune` = python -m finetune
    assert result.returncode == 0, result.stderr
    assert [r["step"] for r in _metrics(run) if r["type"] == "train"] == list(range(1, 13))


def test_docs_list_every_setting_a_resume_may_change():
    from conftest import ROOT

    from finetune.training.train_state import RESUMABLE_KEYS

    section = (ROOT / "docs" / "checkpoints.md").read_text(encoding="utf-8")
    for key in RESUMABLE_KEYS:
        assert f"`{key}`" in section or f"`{key.split('.')[-1]}`" in section, key


def test_fused_adamw_state_round_trips_exactly(tmp_path):
    import torch
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict, set_optimizer_state_dict

    from finetune.storage import state_files

    def model_and_optimizer():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        return model, torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)

    def step(model, optimizer, seed):
        torch.manual_seed(seed)
        model(torch.randn(3, 4)).pow(2).sum().backward()
        optimizer.step()
        optimizer.zero_grad()

    full = StateDictOptions(full_state_dict=True)
    model, optimizer = model_and_optimizer()
    for seed in (1, 2):
        step(model, optimizer, seed)
    state_files.save_optimizer(get_optimizer_state_dict(model, optimizer, options=full), tmp_path)
    loaded = state_files.load_optimizer(tmp_path)
    assert loaded["state"]["0.weight"]["step"].dtype == torch.float32  # fused keeps `step` a tensor

    resumed, resumed_optimizer = model_and_optimizer()
    resumed.load_state_dict(model.state_dict())
    set_optimizer_state_dict(resumed, resumed_optimizer, loaded, options=full)
    step(model, optimizer, 3)
    step(resumed, resumed_optimizer, 3)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_rng_state_round_trips(tmp_path):
    import random

    import numpy as np
    import torch

    from finetune.storage import state_files

    state_files.save_rng(tmp_path, rank=0)
    first = (random.random(), np.random.rand(), torch.rand(3))
    state_files.load_rng(tmp_path, rank=0)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_atomic_dir_replaces_the_target_whole_or_not_at_all(tmp_path):
    from finetune.storage.checkpoint import atomic_dir

    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("killed midway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "weights").read_text() == "old"
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "weights").read_text() == "new"


def test_atomic_dir_leaves_creating_and_publishing_to_its_owner(tmp_path):
    """Another process writes into the owner's temporary directory; it neither makes nor
    publishes it, and removes it when its own write fails."""
    from finetune.storage.checkpoint import atomic_dir

    target = tmp_path / "step-000001"
    with atomic_dir(target, owner=False) as tmp:
        assert not tmp.exists()  # the owner makes it
        tmp.mkdir()
        (tmp / "rng_1.safetensors").write_text("state")
    assert tmp.is_dir() and not target.exists()  # the owner publishes it
    with pytest.raises(OSError):
        with atomic_dir(target, owner=False):
            raise OSError("disk gone")
    assert not tmp.exists() and not target.exists()


def _users_folder(path):
    """A user's folder outside the run, holding names finetune writes too."""
    path.mkdir()
    for name in ("keep.txt", "manifest.json", "model.safetensors", "README.md"):
        (path / name).write_text(f"the user's {name}")
    return path


def _tree(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_symlink_where_finetune_replaces_or_deletes_goes_as_a_link(tmp_path):
    """atomic_dir's replace, its leftovers' cleanup, pruning, dropping newer checkpoints and moving
    damaged ones aside: a symlink at any of those names is removed as a link, never followed."""
    from finetune.storage import checkpoint as ck

    mine = _users_folder(tmp_path / "mine")
    before = _tree(mine)
    run = tmp_path / "run"
    steps = run / "checkpoints"
    steps.mkdir(parents=True)

    for name in ("model", ".tmp-best"):
        (run / name).symlink_to(mine)
    for target in ("model", "best"):  # the link at the target; the link at its temporary name
        with ck.atomic_dir(run / target) as tmp:
            (tmp / "weights").write_text("new")
        assert not (run / target).is_symlink() and (run / target / "weights").read_text() == "new"
    assert not (run / ".tmp-best").is_symlink() and not (run / ".old-model").exists()

    for leftover in (run / ".tmp-model", run / ".old-best", steps / ".tmp-step-000009", steps / ".old-step-000008"):
        leftover.symlink_to(mine)
    ck.remove_partial(run, ("model", "best"))
    assert not [p for p in run.rglob("*") if p.is_symlink()]

    for step in (1, 2, 3, 4):  # checkpoints that are links to a folder holding a manifest
        (steps / f"step-00000{step}").symlink_to(mine)
    (steps / "step-000003.damaged").symlink_to(mine)  # an older damaged copy of step 3
    ck.prune(run, keep=2, protect_step=None)
    assert sorted(p.name for p in steps.iterdir()) == ["step-000003", "step-000003.damaged", "step-000004"]
    assert ck.drop_newer(run, 3) == ["step-000004"]
    ck.move_aside([(steps / "step-000003", "damaged")], steps / "step-000002")
    assert [p.name for p in steps.iterdir()] == ["step-000003.damaged"]  # the link, renamed
    assert _tree(mine) == before
