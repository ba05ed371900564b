"""Catch a NaN or infinite loss before it reaches a checkpoint or the best model.

On a GPU, reading a tensor's value waits for all queued kernels, so a check after every step
would stall the pipeline. The check there stays on the device (a running "first bad step"
tensor) and is read only where it matters: at log steps and before every save or evaluation.
On a CPU there is no queue, so every step is checked and the message names the exact step.
`on_nan: skip` must decide before the optimizer step, so it reads the flag every micro-batch.
"""

from __future__ import annotations

from finetune.errors import TrainingStopped


class DivergenceGuard:
    def __init__(self, device, on_nan: str, last_checkpoint_hint, any_process=None):
        import torch

        self.torch = torch
        self.skip = on_nan == "skip"
        self.eager = device.type == "cpu" or self.skip
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.hint = last_checkpoint_hint  # callable: text naming the checkpoint to resume from
        self.skipped = 0
        # Under DDP every process must skip the same backward, or the gradient all-reduce hangs:
        # `any_process` takes the maximum of a 0/1 "bad" flag over processes.
        self.any_process = any_process or (lambda flag: flag)

    def finite(self, loss) -> bool:
        """With `skip`: is this micro-batch's loss usable? Always True in `stop` mode."""
        if not self.skip:
            return True
        ok = not self.any_process((~self.torch.isfinite(loss.detach())).float()).item()
        self.skipped += not ok
        return ok

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
                f"saving the diverged weights. {self.hint()} Lower training.lr, use bf16 "
                "instead of fp16, or set training.on_nan=skip to drop such batches"
            )
