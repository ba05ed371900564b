"""scripts/sweeps/sst2_sweep.py: it trains what the SST-2 recipe trains, and summarises settings over seeds."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT, script_module


def test_its_defaults_are_the_recipes_values():
    sweep = script_module("sweeps/sst2_sweep")
    recipe = yaml.safe_load((ROOT / "finetune/recipes/sst2-minilm-full.yaml").read_text())
    training = recipe["training"]
    assert sweep.MAX_LENGTH == recipe["data"]["max_length"]
    from finetune.configuration.config import TrainingSection

    defaults = TrainingSection()
    assert sweep.RECIPE["lr"] == training["lr"]
    assert sweep.RECIPE["epochs"] == training["epochs"]
    assert sweep.RECIPE["bs"] == training["batch_size"]
    assert sweep.RECIPE["warmup"] == training["warmup_ratio"]
    assert sweep.RECIPE["wd"] == training.get("weight_decay", defaults.weight_decay)
    assert sweep.RECIPE["scheduler"] == training.get("scheduler", defaults.scheduler)
    assert sweep.RECIPE["seed"] == training.get("seed", defaults.seed)


def test_an_unknown_key_is_refused_by_name():
    sweep = script_module("sweeps/sst2_sweep")
    with pytest.raises(SystemExit, match="unknown key 'learning_rate'"):
        sweep.parse_trial("learning_rate=1e-4")
    assert sweep.parse_trial("lr=1e-4 bs=64")["bs"] == 64


def test_a_trial_trains_and_the_summary_groups_seeds(tmp_path, tiny_bert):
    sweep = script_module("sweeps/sst2_sweep")
    rows = [json.loads(line) for line in (ROOT / "finetune/resources/sentiment/train.jsonl").read_text().splitlines()]
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / name).write_text("text\tlabel\n" + "".join(f"{r['text']}\t{int(r['label'] == 'positive')}\n" for r in rows[:40]))
    out = tmp_path / "results.jsonl"
    for seed in (1, 2):
        sweep.train_one(sweep.parse_trial(f"epochs=1 bs=4 eval_every=5 seed={seed}"), str(tiny_bert), tmp_path, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["step"] for line in lines] == [5, 10] * 2  # 40 rows / 4 = 10 steps; the last is the final one
    assert all(0 <= line["accuracy"] <= 1 and line["of"] == 10 for line in lines)
    assert sweep.by_setting(out) == {"epochs=1 bs=4": [lines[1]["accuracy"], lines[3]["accuracy"]]}


def test_it_needs_only_torch_and_transformers(tmp_path):
    # A lent GPU machine has torch and transformers, not datasets, evaluate or pydantic.
    import subprocess
    import sys

    blocked = "import sys\nfor name in ('pydantic', 'datasets', 'evaluate', 'accelerate', 'peft'): sys.modules[name] = None\n"
    code = blocked + "import finetune.training.optimizer, finetune.training.sampling\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
