"""The NaN guard: `stop` names the first bad step; `skip` drops bad micro-batches."""

from __future__ import annotations

import pytest
import torch

from finetune.divergence import DivergenceGuard
from finetune.errors import TrainingStopped


def test_stop_names_the_first_bad_step():
    guard = DivergenceGuard(torch.device("cpu"), "stop", lambda: "Last checkpoint: x.")
    guard.observe(torch.tensor(0.5), step=1)
    with pytest.raises(TrainingStopped, match="at step 2;.*Last checkpoint: x"):
        guard.observe(torch.tensor(float("nan")), step=2)


def test_skip_counts_and_never_stops():
    guard = DivergenceGuard(torch.device("cpu"), "skip", lambda: "")
    verdicts = [guard.finite(torch.tensor(v)) for v in (1.0, float("inf"), float("nan"), 2.0)]
    guard.observe(torch.tensor(float("nan")), step=3)
    guard.check()
    assert verdicts == [True, False, False, True] and guard.skipped == 2
