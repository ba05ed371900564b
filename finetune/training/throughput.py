"""Training speed and memory as the metrics log reports them: samples and tokens per second,
seconds from process start to the first batch, and peak memory."""

from __future__ import annotations

import time


class Throughput:
    """Samples and non-padding tokens per second since the last report, without a host sync
    per step: the token count stays on the device until `rates()` reads it."""

    def __init__(self, accelerator):
        import torch

        self.acc = accelerator
        self.tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
        self.samples = 0
        self.start = time.perf_counter()
        # Startup as users feel it: process start to the end of the first micro-batch; reported
        # once, in the first `rates()` (on GPUs: when that batch's kernels were queued).
        self.first_step_seconds: float | None = None
        self._first_reported = False

    def add(self, batch) -> None:
        if self.first_step_seconds is None:
            self.first_step_seconds = seconds_since_process_start()
        mask = batch.get("attention_mask")
        if mask is not None:
            self.tokens += mask.sum()
            self.samples += mask.shape[0]

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
        if not self._first_reported and self.first_step_seconds is not None:
            out["first_step_seconds"] = self.first_step_seconds
            self._first_reported = True
        self.tokens.zero_()
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
