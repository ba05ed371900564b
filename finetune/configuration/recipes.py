"""The shipped configs ("recipes") are package data in finetune/recipes/, so a plain `pip install`
has them. `--config NAME` finds a run recipe by name; a file that exists always wins."""

from __future__ import annotations

import difflib
from pathlib import Path

from finetune.errors import ConfigError

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
LAUNCH_PREFIX = "accelerate/"  # Accelerate launch configs: copied, listed, never trained


def run_recipes() -> dict[str, Path]:
    return {path.stem: path for path in sorted(RECIPES_DIR.glob("*.yaml"))}


def launch_configs() -> dict[str, Path]:
    return {LAUNCH_PREFIX + path.stem: path for path in sorted((RECIPES_DIR / "accelerate").glob("*.yaml"))}


def config_or_recipe(given: Path) -> Path:
    """The path as given when it exists or names a folder (loading words a missing file); else the
    run recipe called `given` (`quickstart` or `quickstart.yaml`)."""
    if given.exists() or given.parent != Path("."):
        return given
    return find(str(given), run_recipes(), "--config")


def find(name: str, recipes: dict[str, Path], what: str) -> Path:
    key = name.removesuffix(".yaml")
    if key in recipes:
        return recipes[key]
    close = difflib.get_close_matches(key, list(recipes), n=3, cutoff=0.5)
    hint = f"close: {', '.join(close)}; " if close else ""
    raise ConfigError(f"{what} '{name}': no such file or recipe; {hint}`finetune recipes list` shows them all")
