"""`finetune chat RUN`: a line in, the generated text out, until EOF (Ctrl-D) or `exit`. The model
is loaded once and answers as `finetune predict` does, with the run's generation settings."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from finetune.configuration.config import RunConfig
from finetune.errors import ConfigError

LABELLING_TASKS = ("sentiment", "classification")
PROMPT = "> "


def chat(run: Path, cfg: RunConfig, checkpoint: str | None) -> None:
    if cfg.task in LABELLING_TASKS:
        raise ConfigError(f"chat: '{run}' is a {cfg.task} run, which labels texts rather than writing "
                          f"them; use finetune predict {run} TEXT (or --file FILE)")
    from finetune.evaluation.predict import run_predictor

    answer = run_predictor(run, cfg, checkpoint)
    for text in _lines(sys.stdin.isatty()):
        typer.echo(answer([text])[0]["generated"])


def _lines(on_terminal: bool):
    """What the user typed, one non-empty line at a time, as typed (without its line ending: a
    text is given to the model as `predict --file` and evaluation give it, spaces included); a
    prompt only on a terminal, so that piped output holds nothing but the answers."""
    while True:
        try:
            line = input(PROMPT) if on_terminal else sys.stdin.readline()
        except EOFError:  # Ctrl-D at the prompt
            typer.echo()
            return
        if not on_terminal and not line:  # end of the piped input
            return
        if line.strip() == "exit":
            return
        if line.strip():
            yield line.rstrip("\r\n")
