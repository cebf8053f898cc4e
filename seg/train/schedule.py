"""The learning rate at each update, as the built-in's MXNet schedulers give it (poly, cosine, step), for engines
that have no MXNet scheduler (tests/seg/train/test_schedule.py compares with MXNet's own)."""
from __future__ import annotations

import math

from seg.config import Hyperparameters

HEAD_LR_MULT = 10  # the freshly initialised heads learn 10× faster than the backbone (GluonCV's lr_mult)


def learning_rate(hp: Hyperparameters, per_epoch: int, num_update: int) -> float:
    """The base learning rate for update number `num_update` (1 for the first step, as MXNet counts)."""
    base, total = hp.learning_rate, max(1, hp.epochs * per_epoch)
    if hp.lr_scheduler == "poly":  # mx.lr_scheduler.PolyScheduler(total, base, pwr=0.9), final_lr 0
        return base * (1 - num_update / total) ** 0.9 if num_update <= total else 0.0
    if hp.lr_scheduler == "cosine":  # mx.lr_scheduler.CosineScheduler(total, base), final_lr 0
        return base * (1 + math.cos(math.pi * num_update / total)) / 2 if num_update <= total else 0.0
    # step: mx.lr_scheduler.MultiFactorScheduler(steps in updates, factor): × factor once the count passes a step
    passed = sum(1 for epoch in hp.lr_scheduler_step if num_update > epoch * per_epoch)
    return base * hp.lr_scheduler_factor ** passed
