"""The shipped recipes: package data that a built wheel carries, listed in 80 columns with what
each needs, copied without overwriting, and found by name by --config (a file that exists wins)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT, run_cli

from finetune.configuration.recipes import RECIPES_DIR, launch_configs, run_recipes
from finetune.configuration.strict_yaml import load_yaml_text


def test_list_shows_every_recipe_with_its_task_method_and_needs_in_80_columns():
    result = run_cli("recipes", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name, path in run_recipes().items():
        raw = load_yaml_text(path.read_text())
        [head] = [line for line in lines if line.startswith(f"{name}: ")]
        assert head.startswith(f"{name}: {raw['task']}, ")
        assert ("LoRA" in head) == bool(raw.get("lora", {}).get("enabled"))
    assert "    needs runs/data/multi30k: python scripts/data/multi30k_to_jsonl.py" in result.stdout
    assert "accelerate/fsdp" in result.stdout


@pytest.mark.parametrize("name", list(run_recipes()))
def test_needs_lines_cover_every_package_local_path_and_hub_id_the_recipe_uses(name):
    text = run_recipes()[name].read_text()
    needs = " ".join(re.findall(r"^# needs: (.+)$", text, re.MULTILINE))
    raw = load_yaml_text(text)
    used = [raw["model"]["name_or_path"], *raw["data"].get("files", {}).values()]
    for value in used:
        if value.startswith("package:"):
            package = value.removeprefix("package:").split("/")[0]
            assert package == "finetune" or package.replace("_", "-") in needs, value
        elif value.startswith(".") or value.count("/") > 1:  # a local path, not owner/name
            assert any(value.startswith(part.rstrip(":")) for part in needs.split()), value
        else:
            assert "network" in needs and value in needs, value
    if raw["data"].get("dataset"):
        assert "network" in needs


def test_copy_writes_the_recipe_to_a_file_or_into_a_folder(tmp_path):
    result = run_cli("recipes", "copy", "xsum-t5-small-lora", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    copied = tmp_path / "xsum-t5-small-lora.yaml"
    assert copied.read_text() == (RECIPES_DIR / "xsum-t5-small-lora.yaml").read_text()
    (tmp_path / "launch").mkdir()
    result = run_cli("recipes", "copy", "accelerate/fsdp", str(tmp_path / "launch"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "launch" / "fsdp.yaml").read_text() == launch_configs()["accelerate/fsdp"].read_text()


def test_a_recipe_name_is_a_config_and_a_file_that_exists_wins(tmp_path):
    shown = run_cli("config", "show", "quickstart", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "task: sentiment" in shown.stdout and "output_dir: runs/quickstart" in shown.stdout
    (tmp_path / "quickstart").write_text((RECIPES_DIR / "xsum-t5-small-lora.yaml").read_text())
    shown = run_cli("config", "show", "quickstart", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "task: summarization" in shown.stdout


def test_a_built_wheel_carries_the_recipes_and_serves_them(tmp_path):
    """What `pip install .` installs: a wheel built from the sources, then run from its files."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "finetune", source / "finetune", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("finetune-*.whl")
    files = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"finetune/recipes/{p.name}" for p in run_recipes().values()}
    shipped |= {f"finetune/recipes/accelerate/{p.name}" for p in launch_configs().values()}
    assert shipped <= files

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-m", "finetune", "recipes", "list"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and "quickstart: sentiment, LoRA" in listed.stdout, listed.stderr
    valid = subprocess.run([sys.executable, "-m", "finetune", "config", "validate", "quickstart"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith(str(site / "finetune" / "recipes" / "quickstart.yaml"))
