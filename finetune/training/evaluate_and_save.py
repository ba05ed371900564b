"""Evaluations during training and the run's end: score the eval split (or its sample), log it,
keep the best model so far in best/, and save the final model with its results and card."""

from __future__ import annotations

import time

from finetune.storage import run_dir as rd
from finetune.errors import ConfigError
from finetune.training.assemble import Run
from finetune.training.progress import log_line
from finetune.training.divergence import advice
from finetune.training.save_model import save
from finetune.training.weight_average import averaged


def evaluate(run: Run, step: int, epoch: float, label: str = "", track_best: bool = True, log: bool = True,
             whole: bool = False, sample_too: bool = False) -> dict:
    """Score the eval split (or, with eval.max_samples_during_training, its sample; `whole`: the
    whole split), log it, and keep the model if it is the best so far. `sample_too`: the last
    step of a sampled run: the whole split is scored once, and the sample's scores (logged, and
    what picks the best model, as at every other step) are taken from its rows."""
    from finetune.evaluation.inference import EvalLoaders, infer, rows_of

    started = time.perf_counter()
    whole = whole or sample_too
    loaders, raw = run.final_eval if whole else (EvalLoaders(run.eval_loader, run.prompt_loader), run.eval_raw)
    if run.accelerator.is_main_process:
        log_line(f"eval {label or f'step {step}'}: scoring {len(raw)} rows")
    with averaged(run):  # scored, then kept in best/ if better: the same weights, swapped in once
        scored, answered = infer(run.task, run.model, loaders, run.accelerator, run.tokenizer, progress=True)
        seconds = time.perf_counter() - started
        tracked = None
        if sample_too:
            tracked, _ = run.task.score(*rows_of(run.sample_rows, scored, answered), run.eval_raw)
            tracked["eval_seconds"] = seconds
            _report(run, step, epoch, tracked, f"step {step}", "sample", log)
        metrics, records = run.task.score(scored, answered, raw)
        metrics["eval_seconds"] = seconds
        run.last_eval = (metrics, records)
        rows = ("whole" if whole else "sample") if run.final_eval is not None else None
        _report(run, step, epoch, metrics, "final, whole split" if sample_too else label or f"step {step}", rows, log)
        tracked = tracked or metrics
        if track_best:
            _keep_best(run, tracked, step)
    return tracked


def _report(run: Run, step: int, epoch: float, metrics: dict, label: str, rows: str | None, log: bool) -> None:
    """One evaluation in metrics.jsonl (`rows`: sample or whole, in a sampled run) and on screen."""
    if log:
        run.log.write({"type": "eval", "split": run.cfg.data.eval_split, "step": step, "epoch": epoch,
                       **({"rows": rows} if rows else {}), **metrics})
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k != "eval_seconds")
    line = f"eval {label}: {shown}"
    if run.progress:
        run.progress.say(line)  # above the bar on a terminal
    else:
        run.accelerator.print(line)


def _keep_best(run: Run, metrics: dict, step: int) -> None:
    name = run.task.best_metric
    if name not in metrics:
        raise ConfigError(
            f"eval.best_metric '{name}' is not computed for this task; choose one of "
            f"{sorted(k for k in metrics if k not in ('samples', 'eval_seconds'))}"
        )
    value = metrics[name]
    better = run.cfg.eval.greater_is_better
    previous = run.best.get("value")
    if previous is not None and (value <= previous if better else value >= previous):
        return
    run.best = {"metric": name, "value": value, "step": step}
    save(run, run.out / rd.BEST_DIR, advice(run.out, run.cfg.training, step + 1, loss=False),
         extra={rd.BEST_FILE: run.best})


def save_final(run: Run, steps: int) -> None:
    from finetune.evaluation.result_files import write_results
    from finetune.saved.model_card import write_model_card

    with averaged(run):  # the model the final evaluation scored
        save(run, run.out / rd.MODEL_DIR, advice(run.out, run.cfg.training, steps + 1, loss=False))
    if run.accelerator.is_main_process:
        write_results(run.out, run.cfg.data.eval_split, *run.last_eval)
        write_model_card(run.out, run.cfg, run.task, run.last_eval[0],
                         seconds=time.time() - run.log.start, steps=steps,
                         processes=run.accelerator.num_processes, stopped_early=run.stopped_early)
    run.log.close()
    run.accelerator.end_training()
