"""Architecture adapters: how rows become tokens and batches become answers, whatever the task."""
