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
"""

from __future__ import annotations

from finetune.errors import TrainingStopped


# `skip` stops once this many micro-batches in a row were skipped (or a whole log window's
# worth, if more): rare bad batches are dropped, a diverged run is not trained on for ever.
SKIP_FLOOR = 8


class DivergenceGuard:
    def __init__(self, device, on_nan: str, last_checkpoint_hint, any_process=None, skip_limit: int = SKIP_FLOOR):
        import torch

        self.torch = torch
        self.skip = on_nan == "skip"
        self.eager = device.type == "cpu" or self.skip
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.hint = last_checkpoint_hint  # callable: text naming the checkpoint to resume from
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
        raise TrainingStopped(
            f"training.on_nan=skip: {what}; stopped without saving. {self.hint()}; or use bf16 "
            "instead of fp16, or check the data for broken rows"
        )

    def observe(self, loss, step: int) -> None:
        """Record the step of the first non-finite loss, without a host sync."""
        if self.skip:
            return
        torch = self.torch
        bad = ~torch.isfinite(loss.detach())
        self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)
        if self.eager:
            self.check()

    def check(self) -> None:
        step = int(self.first_bad.item())
        if step >= 0:
            raise TrainingStopped(
                f"the training loss became NaN or infinite at step {step}; stopped without "
                f"saving the diverged weights. {self.hint()}; or use bf16 instead of fp16, or set "
                "training.on_nan=skip to drop such batches"
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
        f"without saving them to '{target}'. {hint}; or set training.max_grad_norm"
    )


def any_process(acc):
    """Under DDP every process must take the same branch: the maximum of a 0/1 flag over them."""
    return lambda flag: acc.reduce(flag, "max") if acc.num_processes > 1 else flag
