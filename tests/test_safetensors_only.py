"""safetensors_only.py: finetune itself refuses pickles wherever it loads weights (a base model
from a directory or the Hub cache, `eval --model`, a run's adapter or full model, best/, a
checkpoint for eval or resume, merge's inputs), before anything is unpickled: one line saying
safetensors is required and how to convert, never advice to allow pickles.

Each planted pickle creates a marker file when unpickled, and torch.load is made as unsafe as
it can be (plain pickle, whatever `weights_only` says), so no torch default is relied on."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import main_in_process
from test_bad_inputs import base_config, planted_pickle

from finetune.configuration.loading import load_config


@pytest.fixture(autouse=True)
def unsafe_torch_load(monkeypatch):
    """torch.load as a careless library might have it: a plain unpickler."""
    import torch

    def load(file, *args, **kwargs):
        with open(file, "rb") as handle:
            return pickle.load(handle)

    monkeypatch.setattr(torch, "load", load)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_bert, sentiment_files) -> Path:
    """A finished LoRA run with a checkpoint, trained once; cases plant pickles in copies."""
    from finetune.training.loop import train

    root = tmp_path_factory.mktemp("pickles")
    cfg = base_config(root, tiny_bert, sentiment_files)
    cfg["lora"] = {"enabled": True}
    cfg["training"].update(save_every=1, max_steps=2)
    (root / "run.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(root / "run.yaml"), root / "run")
    return root / "run"


# Each place: (tmp, marker, base model copy, finished run copy) -> CLI arguments; it plants a
# pickle where that command would read weights. The error must name `culprit`.
def base(name, only=False, index=False, command="train"):
    """The base model directory holds the pickle `name`: beside its model.safetensors, instead of
    it (`only`), or as the shard its safetensors index names (`index`)."""
    def make(tmp, marker, model, run):
        (model / name).write_bytes(planted_pickle(marker))
        if only or index:
            (model / "model.safetensors").unlink()
        if index:
            (model / "model.safetensors.index.json").write_text(json.dumps(
                {"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": name}}))
        cfg = base_config(tmp / "new", model, _files())
        (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
        if command == "eval --model":
            return ["eval", "--model", str(model), "--config", str(tmp / "run.yaml"), "--output", str(tmp / "zs")]
        return ["train", "--config", str(tmp / "run.yaml")]
    return make


def _files() -> dict:
    from conftest import ROOT

    data = ROOT / "finetune" / "resources" / "sentiment"
    return {"train": str(data / "train.jsonl"), "validation": str(data / "validation.jsonl")}


def in_run(inside: str, name: str, *command: str, drop: str = ""):
    def make(tmp, marker, model, run):
        (run / inside / name).write_bytes(planted_pickle(marker))
        if drop:
            (run / inside / drop).unlink()
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfg["training"]["output_dir"] = str(run)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        return [c.format(run=run) for c in command]
    return make


def base_of_run(*command: str):
    """The run's base model directory (config.yaml names it) holds a pickle beside its safetensors."""
    def make(tmp, marker, model, run):
        (model / "pytorch_model.bin").write_bytes(planted_pickle(marker))
        text = (run / "config.yaml").read_text()
        (run / "config.yaml").write_text(text.replace(str(_original_base(run)), str(model)))
        return [c.format(run=run) for c in command]
    return make


def _original_base(run: Path) -> Path:
    return Path(yaml.safe_load((run / "config.yaml").read_text())["model"]["name_or_path"])


def hub_cache_index_to_pickle(tmp, marker, model, run):
    """A Hub model in the local cache whose safetensors index names a .bin shard: transformers
    would torch.load it (the Hub cannot be listed beforehand, so only the load guard stops it)."""
    snapshot = tmp / "hub" / "models--someone--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(model, snapshot)
    (snapshot / "model.safetensors").unlink()
    (snapshot / "pytorch_model-00001-of-00001.bin").write_bytes(planted_pickle(marker))
    (snapshot / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": "pytorch_model-00001-of-00001.bin"}}))
    (tmp / "hub" / "models--someone--tiny" / "refs").mkdir()
    (tmp / "hub" / "models--someone--tiny" / "refs" / "main").write_text("0" * 40)
    cfg = base_config(tmp / "new", Path("someone/tiny"), _files())
    cfg["model"]["name_or_path"] = "someone/tiny"
    (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
    return ["train", "--config", str(tmp / "run.yaml")]


PLACES = [
    ("base-bin-only", base("pytorch_model.bin", only=True), "pytorch_model.bin"),
    ("base-bin-beside-safetensors", base("pytorch_model.bin"), "pytorch_model.bin"),
    ("base-pt", base("model.pt"), "model.pt"),
    ("base-pth", base("weights.pth"), "weights.pth"),
    ("base-ckpt", base("model.ckpt"), "model.ckpt"),
    ("base-pkl", base("extra.pkl"), "extra.pkl"),
    ("base-index-to-bin", base("pytorch_model-00001-of-00001.bin", index=True), "pytorch_model-00001-of-00001.bin"),
    ("base-hub-cache-index-to-bin", hub_cache_index_to_pickle, "pytorch_model-00001-of-00001.bin"),
    ("eval-model", base("pytorch_model.bin", command="eval --model"), "pytorch_model.bin"),
    ("adapter-bin-only", in_run("model", "adapter_model.bin", "eval", "{run}", drop="adapter_model.safetensors"),
     "adapter_model.bin"),
    ("adapter-bin-beside", in_run("model", "adapter_model.bin", "predict", "{run}", "a fine film"), "adapter_model.bin"),
    ("best-bin", in_run("best", "adapter_model.bin", "eval", "{run}", "--checkpoint", "best"), "adapter_model.bin"),
    ("checkpoint-eval", in_run("checkpoints/step-000002", "pytorch_model.bin", "eval", "{run}", "--checkpoint",
                               "step-000002"), "pytorch_model.bin"),
    ("checkpoint-resume", in_run("checkpoints/step-000002", "optimizer.pt", "train", "--config", "{run}/config.yaml", "--resume"),
     "optimizer.pt"),
    ("merge-adapter", in_run("model", "adapter_model.bin", "merge", "{run}", drop="adapter_model.safetensors"),
     "adapter_model.bin"),
    ("merge-base", base_of_run("merge", "{run}"), "pytorch_model.bin"),
    ("predict-base", base_of_run("predict", "{run}", "a fine film"), "pytorch_model.bin"),
]


@pytest.mark.parametrize("place, culprit", [p[1:] for p in PLACES], ids=[p[0] for p in PLACES])
def test_a_planted_pickle_is_refused_and_never_unpickled(
        lora_run, tiny_bert, tmp_path, place, culprit, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read at each lookup
    marker = tmp_path / "PWNED"
    model = shutil.copytree(tiny_bert, tmp_path / "base")
    run = shutil.copytree(lora_run, tmp_path / "run")
    args = place(tmp_path, marker, model, run)
    code, _, err = main_in_process(args, capsys, monkeypatch)
    assert not marker.exists(), "a pickle was unpickled"
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    line = lines[0]
    assert culprit in line and "pickle" in line and "requires safetensors" in line, line
    assert "convert" in line
    assert "allow_pickle" not in line and "weights_only=False" not in line


def test_allow_pickle_is_no_longer_an_opt_in(tmp_path, capsys, monkeypatch):
    """Configs that say allow_pickle: false still read (runs recorded it); true is refused."""
    from finetune.configuration.config import ModelSection

    assert ModelSection(name_or_path="x", allow_pickle=False).allow_pickle is False
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(
        {"task": "sentiment", "model": {"name_or_path": "x", "allow_pickle": True}, "data": {"dataset": "d"}}))
    code, _, err = main_in_process(["config", "validate", str(tmp_path / "run.yaml")], capsys, monkeypatch)
    assert code == 2 and "model.allow_pickle" in err and "safetensors" in err, err
