"""Training speed and memory as the metrics log reports them: samples and tokens per second,
model FLOPs utilisation, seconds from process start to the first batch, and peak memory."""

from __future__ import annotations

import time

from finetune.data.packing import EXAMPLES_KEY, TOKENS_KEY


class Throughput:
    """Samples and non-padding tokens per second since the last report, without a host sync
    per step: the token count stays on the device until `rates()` reads it."""

    def __init__(self, accelerator, flops_per_token: float = 0.0, peak_flops: float = 0.0,
                 counts_targets: bool = False):
        import torch

        self.acc = accelerator
        self.tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
        # Work done, for MFU: an encoder-decoder also runs its decoder over the target tokens.
        self.work_tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
        self.flops_per_token, self.peak_flops, self.counts_targets = flops_per_token, peak_flops, counts_targets
        self.samples = 0
        self.start = time.perf_counter()
        # Startup as users feel it: process start to the end of the first micro-batch; reported
        # once, in the first `rates()` (on GPUs: when that batch's kernels were queued).
        self.first_step_seconds: float | None = None
        self._first_reported = False

    def add(self, batch) -> None:
        if self.first_step_seconds is None:
            self.first_step_seconds = seconds_since_process_start()
        if EXAMPLES_KEY in batch:  # packed rows: count examples and their tokens, not rows
            self.tokens += batch[TOKENS_KEY]
            self.samples += batch[EXAMPLES_KEY]
            self.work_tokens += batch[TOKENS_KEY]
            return
        mask = batch.get("attention_mask")
        if mask is not None:
            real = mask.sum()
            self.tokens += real
            self.samples += mask.shape[0]
            self.work_tokens += real
        labels = batch.get("labels")
        if self.counts_targets and labels is not None:
            self.work_tokens += (labels != -100).sum()

    def pause(self) -> None:
        self._paused_at = time.perf_counter()

    def resume(self) -> None:
        """Shift the window's start past the pause, so evaluation time is not counted as training."""
        self.start += time.perf_counter() - self._paused_at

    def rates(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        procs = self.acc.num_processes
        out = {
            "samples_per_s": self.samples * procs / elapsed,
            "tokens_per_s": self.tokens.item() * procs / elapsed,
            "peak_memory_mb": peak_memory_mb(self.acc.device),
        }
        if self.flops_per_token and self.peak_flops:  # this process's work against its own peak
            out["mfu"] = self.work_tokens.item() * self.flops_per_token / elapsed / self.peak_flops
        if not self._first_reported and self.first_step_seconds is not None:
            out["first_step_seconds"] = self.first_step_seconds
            self._first_reported = True
        self.tokens.zero_()
        self.work_tokens.zero_()
        self.samples = 0
        self.start = time.perf_counter()
        return out


def seconds_since_process_start() -> float:
    import psutil  # an accelerate dependency

    return time.time() - psutil.Process().create_time()


def peak_memory_mb(device) -> float:
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
