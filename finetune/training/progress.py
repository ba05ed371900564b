"""What a person watching a run sees. On a terminal: a progress bar, with evaluation lines
printed above it. Anywhere else (CI, `nohup`, Slurm logs): no carriage-return bar, one plain
line per log step with time, step, epoch, loss, lr, samples/s, MFU and the time left.

The time left counts training only: evaluations pause the clock, as they pause samples/s."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, done: int, enabled: bool):
        from tqdm.auto import tqdm

        self.stream = sys.stderr  # the bar's; lines go to stdout, where they always went
        self.enabled = enabled
        self.terminal = enabled and self.stream.isatty()
        self.total, self.start_step = total, done
        self.done = done
        self.training_seconds = 0.0
        self._since = time.perf_counter()
        self.bar = tqdm(total=total, initial=done, desc="Training", disable=not self.terminal, file=self.stream)

    def step(self) -> None:
        self.done += 1
        self.bar.update(1)

    def pause(self) -> None:
        self.training_seconds += time.perf_counter() - self._since

    def resume(self) -> None:
        self._since = time.perf_counter()

    def seconds_left(self) -> float | None:
        trained = self.training_seconds + time.perf_counter() - self._since
        steps = self.done - self.start_step
        return (self.total - self.done) * trained / steps if steps else None

    def logged(self, record: dict) -> None:
        """A metrics line: the bar's figures on a terminal, a plain line elsewhere."""
        if self.terminal:
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                                 samples_s=f"{record['samples_per_s']:.1f}",
                                 **({"mfu": f"{100 * record['mfu']:.0f}%"} if "mfu" in record else {}))
        elif self.enabled:
            left = self.seconds_left()
            self.say(f"{time.strftime('%H:%M:%S')} step {record['step']}/{self.total} epoch {record['epoch']:.2f} "
                     f"loss {record['loss']:.4f} lr {record['lr']:.2e} samples/s {record['samples_per_s']:.1f}"
                     + (f" mfu {100 * record['mfu']:.1f}%" if "mfu" in record else "")
                     + (f" left {_duration(left)}" if left is not None else ""))

    def say(self, line: str) -> None:
        """A line of its own, above the bar on a terminal."""
        if not self.enabled:
            return
        if self.terminal:
            self.bar.write(line, file=sys.stdout)  # clears the bar, prints, redraws it below
        else:
            print(line, flush=True)

    def close(self) -> None:
        self.bar.close()


def log_line(line: str) -> None:
    """A timed line where no bar shows that work is under way (a log file): an evaluation that
    generates can take many minutes on a CPU, and a silent log looks like a hung run."""
    if not sys.stderr.isatty():
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
