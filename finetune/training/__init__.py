"""Training a run: assemble it, start or resume it, the loop, checkpoints' state, divergence, signals."""
