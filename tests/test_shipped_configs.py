"""Every shipped config parses and validates (unknown keys, bad values and missing columns
are caught before anyone spends time on a run)."""

from __future__ import annotations

import pytest

from finetune.configuration.loading import load_config
from finetune.configuration.recipes import run_recipes

CONFIGS = list(run_recipes().values())


def test_configs_are_shipped():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.task in ("sentiment", "classification", "translation", "summarization")
