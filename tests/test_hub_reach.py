"""A Hub id while the Hub cannot be reached: one line, at once, without huggingface_hub's
retries (about 45 s of 'Retrying in 8s' lines before this was fixed)."""

from __future__ import annotations

import time

from conftest import run_cli, sentiment_yaml, write_config


def test_unreachable_hub_fails_in_one_line_without_retries(tmp_path, tiny_bert, sentiment_files):
    text = sentiment_yaml(tiny_bert, sentiment_files).replace(str(tiny_bert), "nobody/no-such-model")
    cfg = write_config(tmp_path / "run.yaml", text + f"training:\n  output_dir: {tmp_path / 'run'}\n")
    # Not offline by flag: the endpoint is a closed local port, as with the network unplugged.
    env = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    start = time.monotonic()
    result = run_cli("train", "--config", str(cfg), env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: model.name_or_path 'nobody/no-such-model'")
    assert "Retrying" not in result.stderr and time.monotonic() - start < 30
    assert not (tmp_path / "run").exists()
