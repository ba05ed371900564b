"""The `finetune` command line. Thin: parse, load the config, call one function.

Heavy libraries (torch, transformers, peft) are imported inside the commands, so `--help` and
`finetune config ...` answer at once.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import List, Optional

import typer

from finetune.commands.config import OVERRIDES, config_app
from finetune.commands.recipes import recipes_app
from finetune.commands.run_arguments import bare_resume, load_model_config, load_run, print_result
from finetune.configuration.recipes import config_or_recipe
from finetune.errors import FinetuneError
from finetune.quiet_libraries import quiet_libraries

app = typer.Typer(
    name="finetune",
    help="Fine-tune pretrained Transformers from one YAML file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: importing rich to draw boxes doubled `--help` time
)
app.add_typer(config_app, name="config")
app.add_typer(recipes_app, name="recipes")

def _print_version(asked: bool) -> None:
    if asked:
        from finetune import __version__

        typer.echo(f"finetune {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the libraries' own log messages."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    if not verbose:
        quiet_libraries()


@app.command()
def train(
    config: Path = typer.Option(..., "--config", "-c", help="The run's YAML file, or a recipe's name.",
                                callback=config_or_recipe),
    overrides: Optional[List[str]] = OVERRIDES,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    resume: Optional[str] = typer.Option(
        None, "--resume", show_default=False,
        help="Continue from the newest checkpoint of the run directory (`--resume`), or from PATH "
        "(`--resume PATH`: a run directory or one of its checkpoints).",
    ),
    ignore_memory_plan: bool = typer.Option(
        False, "--ignore-memory-plan", help="Train even where the memory plan predicts the run will not fit."),
) -> None:
    """Train a model as the config describes; writes the run directory."""
    from finetune.configuration.loading import default_output_dir, load_config
    from finetune.model.hub_reach import offline_unless_reachable
    from finetune.training.loop import train as run_training

    cfg = load_config(config, overrides or [])
    offline_unless_reachable([cfg.model.name_or_path, cfg.data.dataset])
    out = Path(cfg.training.output_dir or default_output_dir(config))
    cfg.training.output_dir = str(out)
    metrics = run_training(cfg, out, overwrite=overwrite, resume=resume, config_file=config,
                           check_memory=not ignore_memory_plan)
    print_result(f"run saved to {out}", metrics)


@app.command()
def plan(
    config: Path = typer.Argument(..., help="The run's YAML file, or a recipe's name.", callback=config_or_recipe),
    overrides: Optional[List[str]] = OVERRIDES,
    measure: int = typer.Option(0, "--measure", min=0, help="Also run N real training steps (in a throwaway "
                                "directory) and report the measured peak and seconds per step."),
    processes: Optional[int] = typer.Option(None, "--processes", min=1, help="Processes to plan for "
                                            "(default: WORLD_SIZE, else 1)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object, for scripts."),
) -> None:
    """What a run will need before it starts: parameters, memory per process (weights, gradients,
    optimizer state, activations), the predicted peak, tokens and steps per epoch. The model is
    built from its config alone (no weights read)."""
    from finetune.planning.command import make_plan
    from finetune.model.hub_reach import offline_unless_reachable
    from finetune.configuration.loading import load_config

    cfg = load_config(config, overrides or [])
    offline_unless_reachable([cfg.model.name_or_path, cfg.data.dataset])
    the_plan = make_plan(cfg, processes)
    if measure:
        from finetune.training.loop import measure_steps

        the_plan.measured = measure_steps(cfg, measure)
    typer.echo(json.dumps(the_plan.as_dict(), indent=2) if as_json else the_plan.table())


@app.command("eval")
def eval_command(
    run_dir: Optional[str] = typer.Argument(
        None, help="A run directory written by `finetune train` (or, with --model, the first override).",
        show_default=False),
    overrides: Optional[List[str]] = OVERRIDES,
    split: Optional[str] = typer.Option(None, "--split", help="Split to score (default: data.eval_split)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="`best` or a checkpoint name."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Score this model as it is (Hub id or path; zero-shot baseline), with --config."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="With --model: the run's YAML file.",
                                          callback=lambda given: given and config_or_recipe(given)),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="With --model: where results go (default: runs/<config name>-zero-shot)."),
) -> None:
    """Score a trained run, or with --model an untrained one, on a split; writes
    eval_<split>.json and predictions_<split>.jsonl (with --checkpoint: eval_<split>.<checkpoint>.json)."""
    from finetune.configuration.loading import default_output_dir
    from finetune.errors import ConfigError
    from finetune.commands.evaluate import evaluate_model, evaluate_run
    from finetune.storage import run_dir as rd

    overrides = list(overrides or [])
    if model is None:
        if run_dir is None or config is not None or output is not None:
            raise ConfigError("eval: give a run directory (finetune eval RUN_DIR), or --model with --config "
                              "to score a model that was not trained here")
        run, cfg = load_run(Path(run_dir), overrides, checkpoint)
        name = split or cfg.data.eval_split
        metrics = evaluate_run(run, cfg, name, checkpoint)
        print_result(f"wrote {run / rd.eval_file(name, checkpoint)}", metrics)
        return
    if run_dir is not None:  # `eval --model M --config C a.b=1`: the first override lands here
        if "=" not in run_dir:
            raise ConfigError(f"eval: '{run_dir}' is a run directory, and --model scores a model without "
                              "one; give one or the other")
        overrides.insert(0, run_dir)
    if config is None or checkpoint is not None:
        raise ConfigError("eval --model: give --config with the run's YAML file (data, task, decoding); "
                          "--checkpoint only applies to a run directory")
    cfg = load_model_config(config, overrides + [f"model.name_or_path={model}"])
    out = output or Path(default_output_dir(config) + "-zero-shot")
    name = split or cfg.data.eval_split
    metrics = evaluate_model(cfg, name, out)
    print_result(f"wrote {out / rd.eval_file(name)}", metrics)


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run directory written by `finetune train`."),
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to answer; `-` reads standard input.",
                                                show_default=False),
    file: Optional[str] = typer.Option(
        None, "--file", "-f", help="Plain text lines, or JSON lines (see --field); `-`: standard input."),
    field: str = typer.Option("text", "--field", help="The text field of JSON lines."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the answers here (a new file)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="`best` or a checkpoint name."),
) -> None:
    """Answer texts as JSON lines: label, score and every label's probability (classification), or
    the generated text."""
    from finetune.errors import DataError
    from finetune.evaluation.predict import check_output, predict_run, read_texts, write_answers

    texts = list(texts or [])
    if texts == ["-"]:
        texts, file = [], "-"
    inputs = texts + (read_texts(file, field) if file else [])
    if not inputs:
        raise DataError("predict: give texts as arguments, --file FILE, or - to read standard input")
    check_output(output)
    run, cfg = load_run(run_dir, [], checkpoint)
    write_answers(predict_run(run, cfg, inputs, checkpoint), output)


@app.command()
def chat(
    run_dir: Path = typer.Argument(..., help="A translation or summarization run written by `finetune train`."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="`best` or a checkpoint name."),
) -> None:
    """Generate for each line typed or piped in, as `predict` would; `exit` or Ctrl-D ends it."""
    from finetune.commands.chat import chat as chat_loop

    chat_loop(*load_run(run_dir, [], checkpoint), checkpoint)


@app.command()
def plot(run_dir: Path = typer.Argument(..., help="A run directory written by `finetune train`.")) -> None:
    """Write PNGs of training loss, learning rate and evaluation metrics to RUN_DIR/plots."""
    from finetune.storage import run_dir as rd
    from finetune.views.plots import plot_run

    for path in plot_run(rd.require_run(run_dir)):
        typer.echo(f"wrote {path}")


@app.command()
def merge(
    run_dir: Path = typer.Argument(..., help="A LoRA run directory written by `finetune train`."),
    out_dir: Optional[Path] = typer.Argument(
        None, help="New directory for the merged model (default: RUN_DIR/merged, which `push --merged` sends).",
        show_default=False),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="`best` or a checkpoint name."),
) -> None:
    """Fold the LoRA adapter into the base weights; OUT_DIR loads without peft."""
    from finetune.commands.merge import merge_run

    run, cfg = load_run(run_dir, [], checkpoint)
    typer.echo(f"merged model saved to {merge_run(run, cfg, out_dir, checkpoint)}")


@app.command()
def attention(
    run_dir: Path = typer.Argument(..., help="A run directory written by `finetune train`."),
    text: str = typer.Argument(..., help="The text to look at."),
    layer: Optional[int] = typer.Option(None, "--layer", help="Layer, counted from 0 (default: the last)."),
    head: Optional[int] = typer.Option(None, "--head", help="Head, counted from 0 (default: a grid of every "
                                       "head, and each head alone)."),
    target: Optional[str] = typer.Option(None, "--target", help="Generation runs: the target the decoder "
                                         "reads (default: the model's own generation)."),
) -> None:
    """Heatmaps of the fine-tuned model's attention over TEXT, in RUN_DIR/attention
    (layerL_headH.png, layerL_heads.png; T5: encoder_, decoder_, cross_ before each name)."""
    from finetune.views.attention.command import attention_run

    run, cfg = load_run(run_dir, [])
    for path in attention_run(run, cfg, text, layer, head, target):
        typer.echo(f"wrote {path}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run directory written by `finetune train`.")) -> None:
    """Write RUN_DIR/report.html: config, curves, metrics, errors or generations and attention, on one
    self-contained page."""
    from finetune.views.report import write_report

    typer.echo(f"wrote {write_report(*load_run(run_dir, []))}")


@app.command()
def env(as_json: bool = typer.Option(False, "--json", help="One JSON object, for scripts.")) -> None:
    """Print versions, devices and the Accelerate setup, to paste into a bug report."""
    from finetune.envinfo import format_report, report

    typer.echo(json.dumps(report(), indent=2) if as_json else format_report(report()))


@app.command()
def push(
    run_dir: Path = typer.Argument(..., help="A run directory written by `finetune train`."),
    repo_id: str = typer.Argument(..., help="Hub repo to create or update, NAMESPACE/NAME."),
    private: bool = typer.Option(False, "--private", help="Create the repo private."),
    merged: bool = typer.Option(False, "--merged", help="Send RUN_DIR/merged (`finetune merge`), not the adapter."),
) -> None:
    """Upload the run's model directory with its model card to the Hugging Face Hub."""
    from finetune.storage import run_dir as rd
    from finetune.commands.push import push as upload

    typer.echo(f"pushed to {upload(rd.require_run(run_dir), repo_id, private, merged)}")


def main() -> None:
    from finetune.storage.disk_errors import as_write_error
    from finetune.errors import TrainingStopped

    debug = "--debug" in sys.argv[1:]
    try:
        app(args=bare_resume(sys.argv[1:]))
    except (FinetuneError, OSError) as caught:
        # Last line of defence: a refused write no saver wrapped is still one line naming the path.
        exc = caught if isinstance(caught, FinetuneError) else as_write_error(caught)
        if exc is None:
            raise
        if debug:
            traceback.print_exc()
        message = " ".join(str(exc).split())  # always one line
        prefix = "stopped" if isinstance(exc, TrainingStopped) else "error"
        typer.echo(f"{prefix}: {message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
