"""Every logged training step carries throughput and memory figures, and the first one says how
long startup took. Presence and sign only: timings are never asserted."""

from __future__ import annotations

import json

from conftest import run_cli, sentiment_yaml, write_config


def test_train_records_carry_throughput(tmp_path, tiny_bert, sentiment_files):
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
training:
  output_dir: {tmp_path / 'run'}
  max_steps: 6
  batch_size: 8
  log_every: 2
  eval_every: 3
""")
    result = run_cli("train", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    train = [r for r in map(json.loads, lines) if r["type"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6]
    for record in train:
        for key in ("samples_per_s", "tokens_per_s", "peak_memory_mb"):
            assert isinstance(record[key], (int, float)) and record[key] > 0, (key, record)
        # Each sample has at least [CLS] and [SEP]: never fewer tokens than samples.
        assert record["tokens_per_s"] >= record["samples_per_s"]
        # MFU is a fraction of the measured matmul peak (a tiny model uses little of it).
        assert 0 < record["mfu"] < 1, record
    # Startup time is reported once, on the first record.
    assert train[0]["first_step_seconds"] > 0
    assert all("first_step_seconds" not in r for r in train[1:])
