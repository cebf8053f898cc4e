"""Checkpoints and early stopping: what survives a restart, and when to stop."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from gt2seg.atomic import atomic_path, atomic_write
from seg.config import Hyperparameters
from seg.errors import TrainingError
from seg.models.artifact import MUST_MATCH

STATE, LAST, BEST, TRAINER_STATES = "state.json", "last.params", "best.params", "trainer.states"

RESUME_MUST_MATCH = MUST_MATCH + ("mini_batch_size", "optimizer", "learning_rate", "lr_scheduler")


class Checkpoints:
    """`checkpoints/`: last and best parameters (the model file format, whichever engine), the engine's optimizer
    state and state.json (written last = commit)."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def state(self) -> Optional[dict]:
        path = self.folder / STATE
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise TrainingError(f"{path} is not valid JSON ({exc}); delete the checkpoint folder to start over") from None

    def save(self, session, state: dict, best: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        session.save_weights(self.folder / LAST)
        if best:
            with atomic_path(self.folder / BEST) as tmp:
                shutil.copyfile(self.folder / LAST, tmp)
        with atomic_path(self.folder / TRAINER_STATES) as tmp:
            session.save_state(tmp)
        atomic_write(self.folder / STATE, json.dumps(state, indent=2).encode())


def track_progress(state: dict, miou: float, epoch: int, hp: Hyperparameters) -> tuple:
    """Record an epoch's mIOU in `state`; returns (is it the best so far, should training stop early).

    As the built-in documents: an epoch whose mIOU is not better than the best by more than the relative
    `early_stopping_tolerance` counts as not improved; after `early_stopping_patience` such epochs in a row,
    and not before `early_stopping_min_epochs`, training stops (only with early_stopping=True).
    """
    best = state["best_miou"]
    improved = miou > (best * (1 + hp.early_stopping_tolerance) if best > 0 else best)
    is_best = miou > state["best_miou"]
    state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
    if is_best:
        state["best_miou"], state["best_epoch"] = miou, epoch
    state["epochs_done"] = epoch
    stop = (hp.early_stopping and epoch >= hp.early_stopping_min_epochs
            and state["bad_epochs"] >= hp.early_stopping_patience)
    return is_best, stop


def _resume_state(checkpoints: Checkpoints, hp: Hyperparameters, engine: str) -> Optional[dict]:
    state = checkpoints.state()
    if state is None:
        return None
    if state.get("engine", "mxnet") != engine:
        raise TrainingError(
            f"the checkpoint in {checkpoints.folder} was written by the {state.get('engine', 'mxnet')} engine, whose "
            f"optimizer state the {engine} engine cannot read; resume with engine={state.get('engine', 'mxnet')}, "
            "or start over from its weights as incremental training (the model channel)"
        )
    saved = state.get("hyperparameters", {})
    diffs = [k for k in RESUME_MUST_MATCH if str(saved.get(k)) != str(hp.to_json()[k])]
    if diffs:
        raise TrainingError(
            f"the checkpoint in {checkpoints.folder} was written with different {', '.join(diffs)}; "
            "restore those hyperparameters or delete the checkpoint folder to start over"
        )
    return state
