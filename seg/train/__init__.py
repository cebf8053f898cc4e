"""Training, once for every engine: the loop, the learning-rate schedule, checkpoints and early stopping, the
process's place in a multi-process job, and the entry points."""
