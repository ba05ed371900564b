"""Looking at a run: plots, attention maps, the report."""
