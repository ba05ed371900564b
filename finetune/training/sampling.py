"""The training sampler: a seeded shuffle per epoch, optionally grouping similar lengths.

Grouping puts examples of similar length in the same batch, so dynamic padding adds few pad
tokens; batches are still drawn in random order. The order depends only on (seed, epoch), which
is what makes a resumed run see the same batches as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

MEGABATCH_FACTOR = 50  # sort within windows of 50 batches: random enough, little padding


class EpochSampler(Sampler[int]):
    def __init__(self, lengths: list[int] | None, batch_size: int, seed: int, num_rows: int):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.num_rows = num_rows
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_rows, generator=generator).tolist()
        if self.lengths is None:
            return iter(order)
        window = self.batch_size * MEGABATCH_FACTOR
        grouped: list[list[int]] = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: -self.lengths[i])
            grouped.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        # Shuffle whole batches so long and short ones alternate over the epoch.
        batch_order = torch.randperm(len(grouped), generator=generator).tolist()
        return iter([i for b in batch_order for i in grouped[b]])
