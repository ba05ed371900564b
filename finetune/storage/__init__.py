"""The run directory on disk: names, the lock, atomic writes, manifests, saved models."""
