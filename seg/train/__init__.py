"""Training: the loop, checkpoints and early stopping, multi-host sync, and the entry points (MXNet)."""
