"""`training.compile`: a compiled model trains the same steps to the same losses as the plain
one (dropout off, so the two differ only in the kernels inductor generates), and saves the
same state_dict keys, so the run loads anywhere."""

from __future__ import annotations

import json

import pytest

from conftest import main_in_process, sentiment_yaml, write_config

pytestmark = pytest.mark.slow  # inductor compiles forward and backward: about half a minute


def _run(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, name, compiled):
    cfg = write_config(tmp_path / f"{name}.yaml", sentiment_yaml(tiny_bert, sentiment_files).replace(
        "model:\n", "model:\n  config_overrides: {hidden_dropout_prob: 0.0, attention_probs_dropout_prob: 0.0}\n", 1)
        + f"""training: {{output_dir: {tmp_path / name}, max_steps: 4, batch_size: 16, log_every: 2, lr: 1.0e-3,
           compile: {str(compiled).lower()}}}
""")
    code, out, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["type"] == "train"], tmp_path / name / "model" / "model.safetensors"


def test_compiled_training_follows_plain_training(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    from safetensors.torch import load_file

    plain, plain_weights = _run(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, "plain", False)
    compiled, compiled_weights = _run(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, "compiled", True)
    assert compiled == pytest.approx(plain, abs=1e-4)
    a, b = load_file(plain_weights), load_file(compiled_weights)
    assert a.keys() == b.keys()  # no `_orig_mod.` prefixes: the saved model is a plain one
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-3
