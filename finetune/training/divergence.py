"""Catch a NaN or infinite loss before it reaches a checkpoint or the best model.

On a GPU, reading a tensor's value waits for all queued kernels, so a check after every step
would stall the pipeline. The check there stays on the device (a running "first bad step"
tensor) and is read only where it matters: at log steps and before every save or evaluation.
On a CPU there is no queue, so every step is checked and the message names the exact step.
`on_nan: skip` must decide before the optimizer step, so it reads the flag every micro-batch;
skipping is bounded (see SKIP_FLOOR), so a run whose every batch is bad stops instead of saving
an untrained model.

A finite loss does not prove finite weights: the optimizer step after it can overflow them (a
huge lr), and the loss that shows it comes one step later, after a save may have written them.
So every save first checks the trainable parameters (`require_finite_weights`). We chose this
over "a checkpoint is good only after a finite evaluation": it needs no evaluation per save,
and one pass over the parameters costs little next to writing them.

Finite weights are not enough either: an update can make them huge yet finite, and only the
next loss shows it. So the checkpoint the advice names is one whose weights were followed by a
finite loss: checkpoint step-N holds the weights step N+1's loss is computed with, and after
a first bad loss at step B only checkpoints before step B-1 are known good (`advice`).
"""

from __future__ import annotations

from pathlib import Path

from finetune.errors import TrainingStopped


# `skip` stops once this many micro-batches in a row were skipped (or a whole log window's
# worth, if more): rare bad batches are dropped, a diverged run is not trained on for ever.
SKIP_FLOOR = 8

# The learning rate the advice suggests is a tenth of the run's, and at most this: past it these
# optimizers rarely train a transformer (AdamW moves each weight by about lr per step; Adafactor
# by lr times the weight's size), so a tenth of an absurd lr (1e6) would diverge again.
LR_CEILING = {"adamw": 1e-3, "adafactor": 1e-2}


class DivergenceGuard:
    def __init__(self, device, on_nan: str, last_checkpoint_hint, any_process=None, skip_limit: int = SKIP_FLOOR):
        import torch

        self.torch = torch
        self.skip = on_nan == "skip"
        self.eager = device.type == "cpu" or self.skip
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.hint = last_checkpoint_hint  # callable: text naming the checkpoint to resume from
        self.bad_step: int | None = None  # the first step whose loss was bad, set before hint() runs
        self.bad_since: int | None = None  # `skip`: the step of the first bad batch in a row
        self.skipped = 0  # since the last metrics line
        self.skip_limit = max(skip_limit, SKIP_FLOOR)
        self.skipped_in_a_row = 0
        self.used = self.seen = 0  # micro-batches trained on / looked at by this process
        # Under DDP every process must skip the same backward, or the gradient all-reduce hangs:
        # `any_process` takes the maximum of a 0/1 "bad" flag over processes.
        self.any_process = any_process or (lambda flag: flag)

    def finite(self, loss) -> bool:
        """With `skip`: is this micro-batch's loss usable? Always True in `stop` mode."""
        if not self.skip:
            return True
        ok = not self.any_process((~self.torch.isfinite(loss.detach())).float()).item()
        self.skipped += not ok
        self.used += ok
        self.seen += 1
        self.skipped_in_a_row = 0 if ok else self.skipped_in_a_row + 1
        if self.skipped_in_a_row >= self.skip_limit:
            self._stop_skipping(f"the last {self.skipped_in_a_row} batches in a row all had a NaN or infinite loss")
        return ok

    def check_before_save(self) -> None:
        """No diverged loss so far and, with `skip`, some batch was trained on (a model that
        skipped every batch is not worth saving as if it were trained)."""
        self.check()
        if self.skip and not self.used and self.seen:
            self._stop_skipping(f"all {self.seen} batches had a NaN or infinite loss, nothing was trained")

    def _stop_skipping(self, what: str) -> None:
        self.bad_step = self.bad_since
        raise TrainingStopped(f"training.on_nan=skip: {what}; stopped without saving. {self.hint()}")

    def observe(self, loss, step: int) -> None:
        """Record the step of the first non-finite loss, without a host sync."""
        if self.skip:  # finite() has judged this batch: note where a run of bad ones began
            if not self.skipped_in_a_row:
                self.bad_since = None
            elif self.bad_since is None:
                self.bad_since = step
            return
        torch = self.torch
        bad = ~torch.isfinite(loss.detach())
        self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)
        if self.eager:
            self.check()

    def check(self) -> None:
        step = int(self.first_bad.item())
        if step >= 0:
            self.bad_step = step
            raise TrainingStopped(
                f"the training loss became NaN or infinite at step {step}; stopped without "
                f"saving the diverged weights. {self.hint()}"
            )


def require_finite_weights(model, target, hint: str, any_process=None) -> None:
    """Refuse to save `model` to `target` when a trainable parameter holds a NaN or an inf."""
    import torch

    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not params:
        return
    # One flag on the device and one read, not a host sync per parameter.
    bad = (~torch.stack([torch.isfinite(p).all() for _, p in params]).all()).float()
    if not (any_process or (lambda flag: flag))(bad).item():
        return
    name = next((name for name, p in params if not torch.isfinite(p).all()), "on another process")
    raise TrainingStopped(
        f"the weights became NaN or infinite (first: {name}) though the loss was finite; stopped "
        f"without saving them to '{target}'. {hint}"
    )


def any_process(acc):
    """Under DDP every process must take the same branch: the maximum of a 0/1 flag over them."""
    return lambda flag: acc.reduce(flag, "max") if acc.num_processes > 1 else flag


def advice(out: Path, t, bad_step: int | None, loss: bool = True) -> str:
    """What to do after a divergence, as a command that works when pasted, naming only settings
    this run has (`t`: its training section). `bad_step`: the first step whose loss was, or would
    be, NaN (None: unknown); `loss`: a loss went bad (False: the weights did, at a save)."""
    import shlex

    from finetune.storage import checkpoint as ck
    from finetune.storage import run_dir as rd

    found = ck.checkpoints(out)
    good = [(step, path) for step, path in found if bad_step is None or step < bad_step - 1]
    lr = min(t.lr / 10, LR_CEILING.get(t.optimizer, t.lr / 10))
    config = shlex.quote(str(out / rd.CONFIG_FILE))
    if good:
        path = good[-1][1]
        text = (f"Last good checkpoint: {path}; continue with a lower learning rate: finetune train "
                f"--config {config} --resume {shlex.quote(str(path))} training.lr={lr:g}")
    else:
        why = (f"{found[-1][1].name} holds weights that already diverged" if found
               else "no checkpoint was saved")
        fresh = shlex.quote(f"{out}-lr{lr:g}")
        text = (f"No checkpoint from before the divergence ({why}); start again with a lower "
                f"learning rate: finetune train --config {config} training.output_dir={fresh} "
                f"training.lr={lr:g}")
    others = []
    if t.mixed_precision == "fp16":
        others.append("use bf16 instead of fp16 (it cannot overflow)")
    if t.max_grad_norm is None:
        others.append("set training.max_grad_norm (1.0 clips each step's gradients)")
    if loss and t.on_nan == "stop":
        others.append("set training.on_nan=skip to drop batches whose loss is NaN")
    if loss and t.on_nan == "skip":
        others.append("check the data for broken rows")
    return text + (f"; or {', or '.join(others)}" if others else "")
