"""The shipped quickstart recipe on the real PyPI MiniLM, for a few steps: the exact path a new
user takes (`--config quickstart`, by name), through the real CLI."""

from __future__ import annotations

import json

from conftest import run_cli


def test_quickstart_config_trains_and_evaluates_minilm(tmp_path):
    run = tmp_path / "quick"
    result = run_cli(
        "train", "--config", "quickstart",
        f"training.output_dir={run}", "training.max_steps=6", "data.max_eval_samples=40",
    )
    assert result.returncode == 0, result.stderr
    assert "eval before training: accuracy=" in result.stdout
    assert "parameters: " in result.stdout and "trainable" in result.stdout
    adapter = json.loads((run / "model" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["key", "query", "value"]
    evals = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    assert [e["step"] for e in evals] == [0, 6]
    assert all(e["samples"] == 40 for e in evals)

    result = run_cli("eval", str(run), "--checkpoint", "best")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "eval_validation.json").read_text())["samples"] == 40
