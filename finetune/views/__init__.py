"""Looking at a run: plots, attention maps, the model card."""
