"""scripts/recipes/reproduce.py: overrides after the options reach the run; a failed run exits with its code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import script_module


def test_overrides_after_the_options_reach_the_run(tmp_path, monkeypatch, capsys):
    reproduce = script_module("recipes/reproduce")
    calls = []
    monkeypatch.setattr(reproduce, "run", lambda *a: calls.append(a) or {"score": 1.0})
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "sst2-minilm-full", "--shared", str(tmp_path),
                                      "--output", str(tmp_path / "out"), "training.ema_decay=0.999", "lora.r=4"])
    reproduce.main()
    [(name, _, shared, out, extra)] = calls
    assert (name, shared, out, extra) == ("sst2-minilm-full", tmp_path.resolve(), tmp_path / "out",
                                          ["training.ema_decay=0.999", "lora.r=4"])


def test_a_failed_run_exits_with_its_code_and_no_traceback(tmp_path, monkeypatch, capsys):
    reproduce = script_module("recipes/reproduce")

    def fails(*_):
        raise subprocess.CalledProcessError(2, ["finetune"])

    monkeypatch.setattr(reproduce, "run", fails)
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "sst2-minilm-full", "--shared", str(Path(tmp_path))])
    with pytest.raises(SystemExit) as stop:
        reproduce.main()
    assert stop.value.code == 2


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_each_recorded_score_is_the_one_in_the_recipes_table(page):
    """The README's one-line-per-recipe table and the detailed one in docs/results.md."""
    from conftest import ROOT

    reproduce = script_module("recipes/reproduce")
    rows = [line for line in (ROOT / page).read_text().splitlines() if line.startswith("| ")]
    for name, recipe in reproduce.RECIPES.items():
        [row] = [line for line in rows if f"(`{name}`)" in line]
        if recipe.recorded is not None:
            shown = f"{recipe.recorded:.4f}" if recipe.recorded < 1 else f"{recipe.recorded:.2f}"
            assert f"**{shown}**" in row, name
