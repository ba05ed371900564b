"""Every shipped launch config in finetune/recipes/accelerate/ is one Accelerate itself accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT

CONFIGS = sorted((ROOT / "finetune" / "recipes" / "accelerate").glob("*.yaml"))
REQUIRED = {"compute_environment", "distributed_type", "num_processes", "num_machines", "mixed_precision"}


def _launch_options() -> set[str]:
    from accelerate.commands.launch import launch_command_parser

    parser = launch_command_parser()
    return {opt.lstrip("-") for action in parser._actions for opt in action.option_strings}


def test_the_documented_setups_are_shipped():
    kinds = {yaml.safe_load(p.read_text())["distributed_type"] for p in CONFIGS}
    assert {"NO", "MULTI_GPU", "FSDP", "DEEPSPEED", "MULTI_CPU"} <= kinds
    assert any(yaml.safe_load(p.read_text())["num_machines"] > 1 for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_accelerate_parses_config(path: Path):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import DistributedType

    raw = yaml.safe_load(path.read_text())
    assert REQUIRED <= set(raw), f"missing {REQUIRED - set(raw)}"
    config = ClusterConfig.from_yaml_file(path)  # raises on unknown top-level keys
    assert isinstance(config.distributed_type, DistributedType)
    assert config.num_processes >= config.num_machines >= 1
    if config.num_machines > 1:
        assert config.main_process_ip and config.main_process_port
    # Nested sections are turned into `accelerate launch --<key>` options: each must exist.
    options = _launch_options()
    nested = {**config.fsdp_config, **config.deepspeed_config}
    unknown = sorted(key for key in nested if key not in options)
    assert not unknown, f"{path.name}: accelerate launch has no option {unknown}"
