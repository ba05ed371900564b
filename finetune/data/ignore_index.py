"""The label value that does not count in the loss (prompt positions, padding): the one value
the data (packing), the tasks' batches and the losses agree on; -100 is PyTorch's default."""

IGNORE_INDEX = -100
