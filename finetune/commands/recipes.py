"""`finetune recipes list | copy`: the shipped configs, one line each, and a copy to edit."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Optional

import typer

from finetune.configuration.recipes import find, launch_configs, run_recipes
from finetune.errors import ConfigError

WIDTH = 80
recipes_app = typer.Typer(help="The shipped run configs: list them, copy one to edit.",
                          no_args_is_help=True, rich_markup_mode=None)


@recipes_app.command("list")
def list_recipes() -> None:
    """One line per recipe (name, task, method, model), then what it needs to run."""
    typer.echo("\n".join(describe(run_recipes())))


@recipes_app.command("copy")
def copy_recipe(
    name: str = typer.Argument(..., help="A name from `finetune recipes list` (or accelerate/NAME)."),
    dest: Optional[Path] = typer.Argument(None, help="A new file, or a folder (default: ./NAME.yaml).",
                                          show_default=False),
) -> None:
    """Write a recipe to a new file to edit; an existing file is never overwritten."""
    source = find(name, run_recipes() | launch_configs(), "recipes copy")
    target = dest or Path(source.name)
    if target.is_dir():
        target = target / source.name
    try:
        with open(target, "x", encoding="utf-8") as handle:  # "x": refuses a file that exists
            handle.write(source.read_text(encoding="utf-8"))
    except FileExistsError:
        raise ConfigError(f"recipes copy: '{target}' already exists; give another DEST") from None
    except FileNotFoundError:
        raise ConfigError(f"recipes copy: folder '{target.parent}' does not exist; create it "
                          "or give another DEST") from None
    typer.echo(f"wrote {target}")


def describe(recipes: dict[str, Path]) -> list[str]:
    """`name: task, method, model` per recipe, its needs below it; every line fits WIDTH."""
    from finetune.configuration.strict_yaml import load_yaml_text

    lines = ["name: task, method (LoRA, full fine-tune or from scratch), model"]
    for name, path in recipes.items():
        text = path.read_text(encoding="utf-8")
        raw = load_yaml_text(text)
        lines.append(_wrap(f"{name}: {raw['task']}, {_method(raw)}, {raw['model']['name_or_path']}", ""))
        lines += [_wrap(need, "    needs ") for need in re.findall(r"^# needs: (.+)$", text, re.MULTILINE)]
    return lines + [_wrap(
        "Paths are relative to the folder you run finetune from. `finetune train --config NAME` "
        "runs one; `finetune recipes copy NAME [DEST]` writes one to edit. Launch configs "
        f"(accelerate launch --config_file): {', '.join(launch_configs())}.", "")]


def _wrap(text: str, first: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=first, subsequent_indent=" " * (len(first) // 2 + 2),
                         break_long_words=False, break_on_hyphens=False)


def _method(raw: dict) -> str:
    if raw.get("lora", {}).get("enabled"):
        return "LoRA"
    return "scratch" if raw["model"].get("init") == "scratch" else "full"
