"""The run directory on disk: names, the lock, atomic writes, manifests, checkpoint
directories, saved-model seals."""
