"""The training loop: train a built run step by step, evaluate, save. `run_start.py` claims or
resumes the run directory, `assemble.py` builds the run; nothing task-specific lives here."""

from __future__ import annotations

import os
from pathlib import Path

from finetune.storage import run_dir as rd
from finetune.training.assemble import Run, setup
from finetune.configuration.config import RunConfig
from finetune.training.divergence import advice, any_process
from finetune.errors import TrainingStopped
from finetune.training.host_memory import fix_mmap_threshold
from finetune.storage.run_lock import RunLock
from finetune.training.evaluate_and_save import evaluate, save_final
from finetune.training.failed_start import FreshStart
from finetune.training.run_start import claim_or_find, continue_from, resume_hint
from finetune.training import model_flops
from finetune.training.throughput import Throughput
from finetune.training.train_state import Position

# Test hook: the loss of this optimizer step becomes NaN, so a test can follow the advice a
# divergence stop prints without the weights it names having to blow up.
NAN_TEST_ENV = "FINETUNE_TEST_NAN_AT_STEP"


def train(cfg: RunConfig, out: Path, *, overwrite: bool = False, resume: str | None = None,
          config_file: Path | None = None, check_memory: bool = True) -> dict[str, float]:
    """Start (or, with `resume`, continue) the run in `out`, train it and save the final model.
    `config_file`: the YAML the run was read from, which --overwrite must not delete.
    `check_memory`: refuse a run the memory plan predicts will not fit."""
    fix_mmap_threshold(cfg.training.mmap_threshold_mb)
    with RunLock() as lock:  # released when training ends; the OS drops it if the process dies
        fresh = None if resume else FreshStart(out)  # before the claim: it notes what is there already
        try:
            start = claim_or_find(cfg, out, lock, overwrite=overwrite, resume=resume, config_file=config_file)
            run = setup(cfg, start.out, overwrite=overwrite, resuming=start.checkpoint is not None,
                        lock=lock, inputs=start.inputs, fresh=fresh, check_memory=check_memory)
            run.data_sha256 = start.data_sha256
            pos = continue_from(run, start) if start.checkpoint else Position()
            try:
                metrics = train_loop(run, pos)
                save_final(run, steps=pos.step)
            except KeyboardInterrupt:  # a second Ctrl-C: the save under way (if any) was abandoned whole
                raise TrainingStopped(
                    f"interrupted at once (a save under way, if any, was abandoned; what was saved before "
                    f"is intact). {_resume_hint(run)}", exit_code=130,
                ) from None
        except BaseException:
            if fresh is not None:
                fresh.undo(lock)  # before its first step: nothing half-made stays, a replaced run comes back
            raise
    return metrics


def train_loop(run: Run, pos: Position | None = None) -> dict[str, float]:
    """Train from `pos` (the start, or where a checkpoint left off) to run.total_steps."""
    from finetune.training.interrupts import StopRequests

    pos = pos or Position()
    cfg = run.cfg.training
    if cfg.eval_before_training and pos.step == 0 and pos.last_eval_step != 0:
        evaluate(run, step=0, epoch=0.0, label="before training", track_best=False)
        pos.last_eval_step = 0  # step 0 is evaluated: never again, whatever else falls on it
    run.model.train()
    with StopRequests() as stop, _Steps(run, pos) as steps:  # the bar closes first: errors print last
        while not steps.finished(stop):
            for batch in _epoch_batches(run, pos):
                if not steps.train_on(batch):
                    continue  # a micro-batch that gradient accumulation adds up
                stop.share()
                if _due(pos.step, cfg.log_every) or pos.step == run.total_steps:
                    steps.log()
                if _due(pos.step, cfg.eval_every):
                    steps.evaluate(_epoch(run, pos.step))
                if _due(pos.step, cfg.save_every) or stop.requested:
                    steps.checkpoint()
                if steps.finished(stop):
                    break
            if not steps.finished(stop):
                steps.end_epoch()
        if stop.requested:
            steps.stop(stop.signum, stop.exit_code)
    return steps.final_evaluation()


class _Steps:
    """What the loop carries from step to step (position, loss window, throughput, divergence
    guard, progress bar) and what it does at each kind of step."""

    def __init__(self, run: Run, pos: Position):
        import torch

        from finetune.training.divergence import DivergenceGuard
        from finetune.training.progress import Progress

        self.run, self.pos, self.cfg = run, pos, run.cfg.training
        acc = run.accelerator
        self.progress = run.progress = Progress(run.total_steps, pos.step, acc.is_main_process)
        self.window = Throughput(acc, **model_flops.for_run(run))
        self.loss_sum = torch.tensor(pos.loss_sum, dtype=torch.float32, device=acc.device)
        self.guard = DivergenceGuard(
            acc.device, self.cfg.on_nan, lambda: advice(run.out, self.cfg, self.guard.bad_step),
            any_process=any_process(acc),
            skip_limit=self.cfg.log_every * self.cfg.gradient_accumulation_steps,
        )
        self.poison_step = int(os.environ.get(NAN_TEST_ENV, "0"))
        self.saved_step = pos.step if pos.step else -1
        self.whole_step = -1  # the step whose whole split was scored (a sampled run's last step)
        self.metrics: dict[str, float] = {}
        self.grad_norm = None  # before clipping, at the last optimizer step (read at log steps only)

    def __enter__(self) -> "_Steps":
        return self

    def __exit__(self, *exc) -> None:
        self.progress.close()

    def finished(self, stop) -> bool:
        return self.pos.step >= self.run.total_steps or stop.requested or bool(self.run.stopped_early)

    def train_on(self, batch) -> bool:
        """Forward and backward on one micro-batch; True when it completed an optimizer step."""
        run, pos, acc, model = self.run, self.pos, self.run.accelerator, self.run.model
        pos.batches_in_epoch += 1
        with acc.accumulate(model):
            loss = self.loss(model, batch)
            if pos.step + 1 == self.poison_step:
                loss = loss * float("nan")
            if self.guard.finite(loss):
                acc.backward(loss)
                self.loss_sum += loss.detach().float()
                pos.loss_count += 1
            if acc.sync_gradients and self.cfg.max_grad_norm:
                self.grad_norm = acc.clip_grad_norm_(model.parameters(), self.cfg.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        self.guard.observe(loss, pos.step + 1)
        self.window.add(batch)
        if not acc.sync_gradients:
            return False
        if not acc.optimizer_step_was_skipped:
            run.scheduler.step()
            if run.weight_average is not None:
                run.weight_average.update()
        pos.step += 1
        if run.fresh is not None:  # the first step of a new run: it is the run now
            run.fresh.keep()
            run.fresh = None
        self.progress.step()
        return True

    def loss(self, model, batch):
        chunked = self.run.chunked_loss  # training.chunked_loss: no full logits (chunked_loss.py)
        if chunked is not None and chunked.applies(model, batch):
            return chunked(model, batch, self.run.accelerator.autocast)
        out = model(**batch)
        eps = self.cfg.label_smoothing
        if not eps:
            return out.loss
        from finetune.training.loss import smoothed_loss

        return smoothed_loss(out.logits, batch["labels"], eps, shift=self.run.task.kind == "causal")

    def log(self) -> None:
        run, pos = self.run, self.pos
        self.guard.check()
        total = run.accelerator.reduce(self.loss_sum, "mean")  # every process joins, even with nothing to add
        loss = (total / pos.loss_count).item() if pos.loss_count else float("nan")
        record = {"type": "train", "step": pos.step, "epoch": _epoch(run, pos.step), "loss": loss,
                  "lr": run.scheduler.get_last_lr()[0], **self.window.rates()}
        if self.grad_norm is not None:
            record["grad_norm"] = float(self.grad_norm)
        if self.guard.skipped:
            record["skipped_nonfinite"], self.guard.skipped = self.guard.skipped, 0
        run.log.write(record)
        self.progress.logged(record)
        self.loss_sum.zero_()
        pos.loss_count = 0

    def evaluate(self, epoch: float) -> None:
        self.guard.check_before_save()  # an evaluation may save the best model
        self.window.pause()  # evaluation time is not training time: keep it out of samples/s and ETA
        self.progress.pause()
        previous = self.run.best.get("value")
        # A sampled run's last step scores the whole split once and takes the sample from it.
        last = self.run.final_eval is not None and self.pos.step == self.run.total_steps
        self.metrics = evaluate(self.run, self.pos.step, epoch, sample_too=last)
        if last:
            self.whole_step = self.pos.step
        self.window.resume()
        self.progress.resume()
        self.pos.last_eval_step = self.pos.step
        self._count_patience(previous)

    def _count_patience(self, previous: float | None) -> None:
        """Early stopping: evaluations in a row whose best metric did not improve by the threshold."""
        run, t = self.run, self.cfg
        if not t.early_stopping_patience:
            return
        name = run.task.best_metric
        gain = self.metrics[name] - previous if previous is not None else float("inf")
        gain = gain if run.cfg.eval.greater_is_better else -gain
        self.pos.evals_without_improvement = 0 if gain > t.early_stopping_threshold else self.pos.evals_without_improvement + 1
        if self.pos.evals_without_improvement >= t.early_stopping_patience:
            run.stopped_early = (f"stopped early at step {self.pos.step}: eval {name} did not improve by more than "
                                 f"{t.early_stopping_threshold:g} in {t.early_stopping_patience} evaluations in a "
                                 f"row (best {run.best.get('value', float('nan')):.4f} at step {run.best.get('step')})")
            run.log.write({"type": "early_stop", "step": self.pos.step, "reason": run.stopped_early})
            self.progress.say(run.stopped_early)

    def checkpoint(self) -> None:
        from finetune.training import train_state
        from finetune.training.divergence import require_finite_weights

        run, pos = self.run, self.pos
        self.guard.check_before_save()  # never save diverged weights
        # The loss of step pos.step was finite, so this step's weights are the first bad ones.
        require_finite_weights(run.model, rd.checkpoint_name(pos.step),
                               advice(run.out, self.cfg, pos.step + 1, loss=False), any_process(run.accelerator))
        pos.loss_sum, pos.best = float(self.loss_sum.item()), run.best
        train_state.save(run, pos)
        self.saved_step = pos.step

    def end_epoch(self) -> None:
        pos = self.pos
        pos.epoch += 1
        pos.batches_in_epoch = 0
        if self.cfg.eval_each_epoch and pos.step != pos.last_eval_step:
            self.evaluate(float(pos.epoch))

    def stop(self, signum, exit_code: int) -> None:
        """A signal asked to stop: save where the run is (unless just saved) and say how to go on."""
        if self.saved_step != self.pos.step:
            self.checkpoint()
        raise TrainingStopped(
            f"stopped by {_signal_name(signum)} after step {self.pos.step}. {_resume_hint(self.run)}",
            exit_code=exit_code,
        )

    def final_evaluation(self) -> dict[str, float]:
        run, pos = self.run, self.pos
        self.guard.check_before_save()
        epoch = _epoch(run, pos.step)
        if run.final_eval is None:
            if pos.last_eval_step != pos.step or not run.last_eval[0]:
                # A run resumed from its final checkpoint has no eval in memory: score it, logged once.
                self.metrics = evaluate(run, pos.step, epoch, log=pos.last_eval_step != pos.step)
            return self.metrics
        # The evaluations so far scored a sample: report the whole split, scored once.
        if self.whole_step != pos.step:
            if pos.last_eval_step == pos.step:  # the sample of this step is logged (an early stop, a resume)
                evaluate(run, pos.step, epoch, label="final, whole split", track_best=False, whole=True)
            else:
                evaluate(run, pos.step, epoch, sample_too=True)
        return run.last_eval[0]


def _due(step: int, every: int | None) -> bool:
    return bool(every) and step % every == 0


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


def _resume_hint(run: Run) -> str:
    return resume_hint(run.out)


def _signal_name(signum) -> str:
    import signal

    return signal.Signals(signum).name if signum else "a signal"


def _epoch(run: Run, step: int) -> float:
    return round(step / run.steps_per_epoch, 4)


def measure_steps(cfg: RunConfig, steps: int) -> dict:
    """`finetune plan --measure N`: N optimizer steps through this loop's own step, on a run
    built as `train` builds it in a throwaway directory (never the config's output_dir), with
    no evaluation or checkpoint. Returns the peak memory (CUDA: max_memory_allocated; CPU: the
    process's peak RSS, loading included) and the mean seconds per step (after the first, which
    allocates the optimizer state, when there are more)."""
    import contextlib
    import sys
    import tempfile
    import time

    import torch

    from finetune.planning.memory import peak_resident_bytes

    cfg = cfg.model_copy(deep=True)
    t = cfg.training
    t.max_steps, t.eval_every, t.eval_each_epoch, t.eval_before_training = steps, None, False, False
    t.save_every, t.report_to, t.early_stopping_patience = None, [], None
    fix_mmap_threshold(t.mmap_threshold_mb)
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="finetune-plan-") as tmp, RunLock() as lock, \
            contextlib.redirect_stdout(sys.stderr):  # setup's lines: stdout is the plan's (--json)
        out = Path(tmp) / "run"
        t.output_dir = str(out)
        start = claim_or_find(cfg, out, lock, overwrite=False, resume=None, config_file=None)
        run = setup(cfg, out, overwrite=False, resuming=False, lock=lock, inputs=start.inputs,
                    fresh=FreshStart(out), check_memory=False)
        device = run.accelerator.device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        pos = Position()
        run.model.train()
        with _Steps(run, pos) as each:
            last = time.perf_counter()
            while pos.step < steps:
                for batch in _epoch_batches(run, pos):
                    if each.train_on(batch):
                        if device.type == "cuda":
                            torch.cuda.synchronize(device)
                        now = time.perf_counter()
                        times.append(now - last)
                        last = now
                        if pos.step >= steps:
                            break
                else:
                    pos.epoch, pos.batches_in_epoch = pos.epoch + 1, 0
        cuda = device.type == "cuda"
        peak = torch.cuda.max_memory_allocated(device) if cuda else peak_resident_bytes()
    timed = times[1:] or times
    return {"steps": steps, "peak_bytes": peak, "what": "CUDA max_memory_allocated" if cuda else "peak RSS",
            "seconds_per_step": sum(timed) / len(timed)}
