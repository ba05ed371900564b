"""`finetune config show | validate | schema`: a config resolved, checked, or described for editors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from finetune.configuration.recipes import config_or_recipe

OVERRIDES = typer.Argument(None, help="Dotted overrides, e.g. training.lr=3e-5 lora.r=16", show_default=False)
config_app = typer.Typer(
    help="Show, check or describe run configs.", no_args_is_help=True, rich_markup_mode=None
)


@config_app.command("show")
def config_show(config: Path = typer.Argument(..., callback=config_or_recipe), overrides: Optional[List[str]] = OVERRIDES) -> None:
    """Print the resolved config with every default filled in."""
    from finetune.configuration.loading import default_output_dir, load_config

    cfg = load_config(config, overrides or [])
    cfg.training.output_dir = cfg.training.output_dir or default_output_dir(config)
    typer.echo(cfg.to_yaml(), nl=False)


@config_app.command("validate")
def config_validate(config: Path = typer.Argument(..., callback=config_or_recipe), overrides: Optional[List[str]] = OVERRIDES) -> None:
    """Check a config; prints `ok` or the first error (exit code 2)."""
    from finetune.configuration.loading import load_config

    load_config(config, overrides or [])
    typer.echo(f"{config}: ok")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the config."""
    from finetune.configuration.json_schema import schema

    typer.echo(json.dumps(schema(), indent=2))
