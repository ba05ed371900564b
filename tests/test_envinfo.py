"""`finetune env`: versions, devices and the Accelerate setup, without a GPU and without
printing credentials."""

from __future__ import annotations

from conftest import run_cli


def test_env_reports_versions_devices_and_accelerate_setup(tmp_path):
    import torch
    import transformers

    config = tmp_path / "hf" / "accelerate" / "default_config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("distributed_type: MULTI_CPU\nnum_processes: 2\n")
    result = run_cli("env", env={"HF_HOME": str(tmp_path / "hf"), "ACCELERATE_MIXED_PRECISION": "bf16",
                                 "ACCELERATE_SECRET_TOKEN": "do-not-print", "WORLD_SIZE": "1"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"- torch: {torch.__version__}" in out
    assert f"- transformers: {transformers.__version__}" in out
    for key in ("python", "datasets", "accelerate", "peft", "finetune", "cpu_threads", "cuda", "bf16"):
        assert f"- {key}: " in out, key
    assert "distributed_type: MULTI_CPU" in out and str(config) in out
    assert "ACCELERATE_MIXED_PRECISION=bf16" in out and "WORLD_SIZE=1" in out
    assert "do-not-print" not in out


def test_env_json_is_one_object_with_the_same_facts(tmp_path):
    import json

    import torch

    result = run_cli("env", "--json", env={"HF_HOME": str(tmp_path / "hf"), "ACCELERATE_SECRET_TOKEN": "do-not-print"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["torch"] == torch.__version__ and "cpu_threads" in report
    assert "do-not-print" not in result.stdout


def test_version_flag(tmp_path):
    from finetune import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"finetune {__version__}"
