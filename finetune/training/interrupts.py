"""Ctrl-C and SIGTERM (a pre-empted node) ask the loop to stop after the current step, so it
can write a checkpoint; a second signal stops at once.

Under several processes a signal may reach only one of them (a scheduler, `kill PID`) or each
at a different step; one that stopped alone would wait for ever in the checkpoint's collectives
while the others trained on. So a request counts only once `share()` has passed it to every
process, which every process calls after every optimizer step: all stop after the same one."""

from __future__ import annotations

import signal
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


class StopRequests:
    def __init__(self):
        self.signum: int | None = None  # agreed by every process (share)
        self._received: int | None = None  # reached this process
        self._previous: dict[int, object] = {}
        self._group = None  # the processes to agree with, if several

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # signals reach only there
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        self._group = _cpu_group()
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        if self._received is not None:  # asked twice: the user means now
            self.__exit__()
            raise KeyboardInterrupt
        self._received = signum
        print(f"\n{signal.Signals(signum).name}: finishing the current step, then saving a checkpoint "
              "(send it again to stop at once)", flush=True)

    def share(self) -> None:
        """Every process, after every optimizer step: stop if any process was asked to."""
        received = self._received or 0
        if self._group is not None:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([received])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
            received = int(flag.item())
        if received and self.signum is None:
            self.signum = received

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 2)


def _cpu_group():
    """A gloo group over all processes (None for one): the flag is a CPU tensor, so a GPU run
    does not wait on its device to read it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return None
    return dist.new_group(backend="gloo")
