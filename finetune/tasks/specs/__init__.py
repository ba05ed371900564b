"""Task specs: what a task reads from the data and how it is scored, whatever the model."""
