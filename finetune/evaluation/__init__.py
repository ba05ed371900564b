"""Running a model over data (one inference loop), predictions, result files."""
