"""The training loop: resume or start a run, train it step by step, evaluate, save. The run is
built in assemble.py; nothing task-specific lives here."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from finetune import checkpoint as ck
from finetune import run_dir as rd
from finetune import train_state
from finetune.assemble import Run, setup, write_config
from finetune.config import RunConfig
from finetune.errors import ConfigError, RunDirError, TrainingStopped
from finetune.host_memory import fix_mmap_threshold
from finetune.run_lock import RunLock
from finetune.throughput import Throughput
from finetune.train_state import Position

# Test hook: the loss of this optimizer step becomes NaN, so a test can follow the advice a
# divergence stop prints (a real divergence would repeat when resumed at any learning rate).
NAN_TEST_ENV = "FINETUNE_TEST_NAN_AT_STEP"


def train(cfg: RunConfig, out: Path, *, overwrite: bool = False, resume: str | None = None,
          config_file: Path | None = None) -> dict[str, float]:
    """`resume`: None (a new run), 'latest' (the newest checkpoint of `out`), or a path to a
    run directory or to one of its checkpoints. `config_file`: the YAML the run was read from,
    which --overwrite must not delete."""
    fix_mmap_threshold(cfg.training.mmap_threshold_mb)
    checkpoint, damaged, lr_scale = None, [], 1.0
    inputs = [] if resume else _inputs(cfg, config_file)
    with RunLock() as lock:  # released when training ends; the OS drops it if the process dies
        if resume:
            if overwrite:
                raise RunDirError("--resume continues a run and --overwrite deletes it; pass only one")
            found, checkpoint, damaged = ck.find_resume_point(resume, out)
            if resume != "latest" and found.resolve() != out.resolve():
                raise RunDirError(
                    f"--resume '{resume}': it belongs to the run '{found}', but this "
                    f"config trains into '{out}'; resume with that run's config "
                    f"({found / rd.CONFIG_FILE}), or set training.output_dir={found}"
                )
            out = found
            cfg.training.output_dir = str(out)
            data_sha256 = train_state.data_sha256(cfg)
            lr_scale = train_state.check_compatible(cfg, checkpoint, data_sha256)
            lock.acquire(out)  # before moving damaged checkpoints aside, drop_newer and any other write
        else:
            _claim(out, overwrite, inputs, lock)
            # After the claim: a refused run (another writer, a user's folder) reads no data first.
            data_sha256 = train_state.data_sha256(cfg)
        run = setup(cfg, out, overwrite=overwrite, resuming=checkpoint is not None, lock=lock, inputs=inputs)
        run.data_sha256 = data_sha256
        pos = Position()
        if checkpoint is not None:
            pos = train_state.load(run, checkpoint, lr_scale)
            run.best = pos.best
            if run.accelerator.is_main_process:
                for line in ck.move_aside(damaged, checkpoint):
                    print(line, file=sys.stderr)
                write_config(cfg, out)  # with the settings changed on resume (lr, max_steps...)
                ck.drop_newer(out, pos.step)
            run.accelerator.print(
                f"resuming from {checkpoint} (step {pos.step}, epoch {pos.epoch}, "
                f"{pos.batches_in_epoch} batches into it)"
            )
        try:
            metrics = train_loop(run, pos)
            save_final(run)
        except KeyboardInterrupt:  # a second Ctrl-C: the save under way (if any) was abandoned whole
            raise TrainingStopped(
                f"interrupted at once (a save under way, if any, was abandoned; what was saved before "
                f"is intact). {_resume_hint(run)}", exit_code=130,
            ) from None
    return metrics


def _inputs(cfg: RunConfig, config_file: Path | None) -> list[tuple[str, Path]]:
    """The files this run reads, which no run directory may swallow."""
    from finetune.paths import resolve

    files = [(f"data file data.files.{split}", Path(resolve(path, f"data.files.{split}")))
             for split, path in cfg.data.files.items()]
    return ([("config file", Path(config_file))] if config_file else []) + files


def _claim(out: Path, overwrite: bool, inputs: list, lock: RunLock) -> None:
    """Refuse a directory this run may not write into, and lock an existing one, before the
    model loads (a second writer is refused at once). A directory that does not exist yet is
    created and locked in `setup`, once set-up succeeded, so a failed start leaves nothing."""
    rd.check_writable(out, overwrite, inputs)  # only reads: a folder we refuse stays untouched
    if out.is_dir():
        lock.acquire(out)
        rd.check_writable(out, overwrite, inputs)  # again, now that no other writer can change it


# ----------------------------------------------------------------------------- train


def train_loop(run: Run, pos: Position | None = None) -> dict[str, float]:
    """Train from `pos` (the start, or where a checkpoint left off) to run.total_steps."""
    import torch
    from tqdm.auto import tqdm

    from finetune.divergence import DivergenceGuard, require_finite_weights
    from finetune.interrupts import StopRequests

    pos = pos or Position()
    acc, cfg, model = run.accelerator, run.cfg.training, run.model
    if cfg.eval_before_training and pos.step == 0:
        evaluate(run, step=0, epoch=0.0, label="before training", track_best=False)
    model.train()
    bar = tqdm(total=run.total_steps, initial=pos.step, disable=not acc.is_local_main_process, desc="Training")
    window = Throughput(acc)
    loss_sum = torch.tensor(pos.loss_sum, dtype=torch.float32, device=acc.device)
    guard = DivergenceGuard(acc.device, cfg.on_nan, lambda: _resume_hint(run, diverged=True),
                            any_process=_any_process(acc), skip_limit=cfg.log_every * cfg.gradient_accumulation_steps)
    poison_step = int(os.environ.get(NAN_TEST_ENV, "0"))
    saved_step = pos.step if pos.step else -1
    metrics: dict[str, float] = {}

    def evaluate_now(epoch: float) -> dict:
        guard.check_before_save()  # an evaluation may save the best model
        window.pause()  # evaluation time is not training time: keep it out of samples/s
        result = evaluate(run, pos.step, epoch)
        window.resume()
        pos.last_eval_step = pos.step
        return result

    def checkpoint() -> None:
        nonlocal saved_step
        guard.check_before_save()  # never save diverged weights
        require_finite_weights(model, rd.checkpoint_name(pos.step), _resume_hint(run, diverged=True), _any_process(acc))
        pos.loss_sum, pos.best = float(loss_sum.item()), run.best
        train_state.save(run, pos)
        saved_step = pos.step

    with StopRequests() as stop, bar:  # closing the bar first keeps an error message last
        while pos.step < run.total_steps and not stop.requested:
            for batch in _epoch_batches(run, pos):
                pos.batches_in_epoch += 1
                with acc.accumulate(model):
                    loss = model(**batch).loss
                    if pos.step + 1 == poison_step:
                        loss = loss * float("nan")
                    if guard.finite(loss):
                        acc.backward(loss)
                        loss_sum += loss.detach().float()
                        pos.loss_count += 1
                    if acc.sync_gradients and cfg.max_grad_norm:
                        acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    run.optimizer.step()
                    run.optimizer.zero_grad(set_to_none=True)
                guard.observe(loss, pos.step + 1)
                window.add(batch)
                if not acc.sync_gradients:
                    continue
                if not acc.optimizer_step_was_skipped:
                    run.scheduler.step()
                pos.step += 1
                bar.update(1)
                if pos.step % cfg.log_every == 0 or pos.step == run.total_steps:
                    guard.check()
                    total = acc.reduce(loss_sum, "mean")  # every process joins, even with nothing to add
                    loss = (total / pos.loss_count).item() if pos.loss_count else float("nan")
                    record = {"type": "train", "step": pos.step, "epoch": _epoch(run, pos.step), "loss": loss,
                              "lr": run.scheduler.get_last_lr()[0], **window.rates()}
                    if guard.skipped:
                        record["skipped_nonfinite"], guard.skipped = guard.skipped, 0
                    run.log.write(record)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{record['lr']:.2e}",
                                    samples_s=f"{record['samples_per_s']:.1f}")
                    loss_sum.zero_()
                    pos.loss_count = 0
                if cfg.eval_every and pos.step % cfg.eval_every == 0:
                    metrics = evaluate_now(_epoch(run, pos.step))
                if (cfg.save_every and pos.step % cfg.save_every == 0) or stop.requested:
                    checkpoint()
                if pos.step >= run.total_steps or stop.requested:
                    break
            else:
                pos.epoch += 1
                pos.batches_in_epoch = 0
                if cfg.eval_each_epoch and pos.step != pos.last_eval_step:
                    metrics = evaluate_now(float(pos.epoch))
                continue
            break
        if stop.requested:
            if saved_step != pos.step:
                checkpoint()
            raise TrainingStopped(
                f"stopped by {_signal_name(stop.signum)} after step {pos.step}. {_resume_hint(run)}",
                exit_code=stop.exit_code,
            )
    guard.check_before_save()
    if pos.last_eval_step != pos.step or not run.last_eval[0]:
        # A run resumed from its final checkpoint has no eval in memory: score it, logged once.
        metrics = evaluate(run, pos.step, _epoch(run, pos.step), log=pos.last_eval_step != pos.step)
    return metrics


def _epoch_batches(run: Run, pos: Position):
    """This epoch's batches, starting after the ones a resumed checkpoint already trained on."""
    # The prepared loader tells the sampler its own epoch counter, which restarts at 0 in a
    # resumed process: set it. Reseeding the loader's generator makes worker seeds per-epoch too.
    run.train_loader.set_epoch(pos.epoch)
    run.sampler.set_epoch(pos.epoch)
    generator = getattr(run.train_loader, "generator", None)
    if generator is not None:
        generator.manual_seed(run.cfg.training.seed + pos.epoch)
    if pos.batches_in_epoch:
        return run.accelerator.skip_first_batches(run.train_loader, pos.batches_in_epoch)
    return run.train_loader


def _any_process(acc):
    """Under DDP every process must take the same branch: the maximum of a 0/1 flag over them."""
    return lambda flag: acc.reduce(flag, "max") if acc.num_processes > 1 else flag


def _resume_hint(run: Run, diverged: bool = False) -> str:
    """The command that continues the run, as it works when pasted. After a divergence it
    resumes the last (finite: every save checks) checkpoint at a tenth of the learning rate."""
    import shlex

    found = ck.checkpoints(run.out)
    if not found:
        return "No checkpoint was saved (set training.save_every to write them)."
    command = f"finetune train --config {shlex.quote(str(run.out / rd.CONFIG_FILE))} --resume"
    if diverged:
        return (f"Last good checkpoint: {found[-1][1]}; continue with a lower learning rate: "
                f"{command} training.lr={run.cfg.training.lr / 10:g}")
    return f"Last checkpoint: {found[-1][1]}; continue with: {command}"


def _signal_name(signum) -> str:
    import signal

    return signal.Signals(signum).name if signum else "a signal"


def _epoch(run: Run, step: int) -> float:
    return round(step / run.steps_per_epoch, 4)


# ----------------------------------------------------------------------------- evaluate / save


def evaluate(
    run: Run, step: int, epoch: float, label: str = "", track_best: bool = True, log: bool = True
) -> dict:
    from finetune.inference import EvalLoaders
    from finetune.inference import evaluate as evaluate_split

    started = time.perf_counter()
    loaders = EvalLoaders(run.eval_loader, run.prompt_loader)
    metrics, records = evaluate_split(run.task, run.model, loaders, run.eval_raw, run.accelerator, run.tokenizer)
    metrics["eval_seconds"] = time.perf_counter() - started
    run.last_eval = (metrics, records)
    if log:
        run.log.write({"type": "eval", "split": run.cfg.data.eval_split, "step": step, "epoch": epoch, **metrics})
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k != "eval_seconds")
    run.accelerator.print(f"eval {label or f'step {step}'}: {shown}")
    if track_best:
        _keep_best(run, metrics, step)
    return metrics


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
    _save(run, run.out / rd.BEST_DIR, extra={rd.BEST_FILE: run.best})


def save_final(run: Run) -> None:
    from finetune.evaluation import write_results
    from finetune.model_card import write_model_card

    _save(run, run.out / rd.MODEL_DIR)
    if run.accelerator.is_main_process:
        write_results(run.out, run.cfg.data.eval_split, *run.last_eval)
        write_model_card(run.out, run.cfg, run.task.auto_class, run.last_eval[0],
                         seconds=time.time() - run.log.start, steps=run.total_steps)
    run.log.close()
    run.accelerator.end_training()


def _save(run: Run, target: Path, extra: dict[str, Any] | None = None) -> None:
    import json

    from finetune.checkpoint import atomic_dir
    from finetune.divergence import require_finite_weights
    from finetune.restore import save_beside

    run.accelerator.wait_for_everyone()
    require_finite_weights(run.model, target.name, _resume_hint(run, diverged=True), _any_process(run.accelerator))
    # Every rank takes part: under FSDP / ZeRO-3 this gathers the sharded weights.
    state_dict = run.accelerator.get_state_dict(run.model)
    if run.accelerator.is_main_process:
        model = run.accelerator.unwrap_model(run.model)
        with atomic_dir(target) as tmp:
            model.save_pretrained(tmp, state_dict=state_dict)
            save_beside(model, run.tokenizer, run.task, tmp)
            for name, content in (extra or {}).items():
                (tmp / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    run.accelerator.wait_for_everyone()
