"""The training loop, one for every engine: sources, epochs, validation, early stopping, checkpoints and the
artifact live here; the engine (seg.engines) supplies the network, the step and the weights."""
from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from gt2seg.atomic import atomic_write
from gt2seg.classes import IGNORE, ClassTable
from gt2seg.layout import LABEL_MAP_DIR
from gt2seg.split import TRAIN, VALIDATION
from seg.config import Hyperparameters
from seg.data.files import FileSource
from seg.data.label_map import load_label_map
from seg.data.transforms import train_transform, val_transform
from seg.errors import TrainingError
from seg.metrics import ConfusionAccumulator
from seg.engines import load_engine
from seg.models.arch import architecture_for
from seg.models.artifact import check_compatible, open_model, read_model, write_artifact
from seg.models.params import plain_names, read_params
from seg.models.pretrained import resolve_pretrained
from seg.report import write_curves_png
from seg.train.checkpoints import BEST, LAST, TRAINER_STATES, Checkpoints, _resume_state, track_progress

log = logging.getLogger("seg.train")


@dataclass
class Inputs:
    """Where the data is: File-mode channel folders, plus the channels SageMaker streams in Pipe mode."""

    channels: dict  # channel name → folder
    pipe_channels: tuple = ()
    pipe_dir: Optional[Path] = None
    classes: Optional[list] = None
    init_model: Optional[Path] = None  # incremental training: a model folder or model.tar.gz


@dataclass
class TrainResult:
    model_dir: Path
    epochs_run: int
    best_epoch: int
    best_miou: float
    stopped_early: bool
    history: list = field(default_factory=list)


def iterations_per_epoch(hp: Hyperparameters, workers: int = 1) -> int:
    return max(1, math.ceil(hp.num_training_samples / (hp.mini_batch_size * workers)))


def make_sources(hp: Hyperparameters, inputs: Inputs, shard=(0, 1)):
    """(train source, validation source): File mode from folders, Pipe mode from seg.pipe's FIFOs."""
    sources = []
    for split, transform, batch, shuffle in (
        (TRAIN, train_transform(hp), hp.mini_batch_size, True),
        (VALIDATION, val_transform(hp), hp.validation_mini_batch_size, False),
    ):
        if split in inputs.pipe_channels:
            from seg.pipe.source import PipeSource

            sources.append(PipeSource(
                inputs.pipe_dir, split, transform=transform, batch_size=batch, shuffle_buffer=4 * batch if shuffle
                else 0, seed=hp.seed, wait_timeout=None, workers=max(1, hp.data_workers),
                label_map=load_label_map(inputs.channels.get(LABEL_MAP_DIR), split),
            ))
        else:
            sources.append(FileSource(inputs.channels, split, transform, batch, shuffle=shuffle, seed=hp.seed,
                                      workers=hp.data_workers, shard=shard if split == TRAIN else (0, 1)))
    return tuple(sources)


def validate(session, source, num_classes, epoch=0) -> ConfusionAccumulator:
    """Confusion matrix over every batch of `source` (the whole validation set, once)."""
    acc = ConfusionAccumulator(num_classes)
    for data, label in source.epoch(epoch):
        acc.update(session.predict(data), label)
    return acc


def train(
    hp: Hyperparameters,
    inputs: Inputs,
    model_dir,
    checkpoint_dir=None,
    progress: bool = True,
    engine: Optional[str] = None,
    device: str = "auto",
    dist=None,
) -> TrainResult:
    """Train, keep the best model by validation mIOU, write the artifact to `model_dir`.

    `engine`: torch or mxnet (default $SEG_ENGINE, else torch). `device`: auto (GPUs when present), cpu or gpu.
    `dist`: a `seg.train.distributed.Distributed` for multi-process jobs; each process reads its share
    (rank of workers) of the training pairs. A device the engine cannot use fails here, before any work.
    """
    backend = load_engine(engine)
    backend.check_device(device)
    model_dir = Path(model_dir)
    np.random.seed(hp.seed)
    workers = dist.workers if dist is not None else 1
    writes = dist is None or dist.writes  # one process per host writes its checkpoints and model
    train_source, val_source = make_sources(hp, inputs, (dist.rank, workers) if dist is not None else (0, 1))
    classes = inputs.classes or ClassTable.default(hp.num_classes).entries()
    if len(classes) != hp.num_classes:
        raise TrainingError(f"classes.json lists {len(classes)} classes but num_classes={hp.num_classes}")

    with tempfile.TemporaryDirectory(prefix="seg-train-") as scratch:
        checkpoints = Checkpoints(checkpoint_dir or Path(scratch) / "checkpoints")
        state = _resume_state(checkpoints, hp, backend.NAME)
        weights, arch, origin = None, architecture_for(hp), None
        if inputs.init_model is not None:  # seg's artifact or the built-in's, in the model's own architecture
            init = read_model(open_model(inputs.init_model, Path(scratch) / "init-model"))
            check_compatible(init.hp, hp, str(inputs.init_model), init.stated)
            arch = init.arch
            if state is None:
                weights, origin = plain_names(read_params(init.params)), f"incremental training from {inputs.init_model}"
        if state is not None:
            weights = plain_names(read_params(checkpoints.folder / LAST))
            origin = f"resuming from {checkpoints.folder} after epoch {state['epochs_done']}"
        pretrained = None
        if hp.use_pretrained_model and weights is None:
            pretrained = resolve_pretrained(hp, scratch)
        per_epoch = iterations_per_epoch(hp, workers)
        session = backend.TrainingSession(hp, arch, per_epoch, pretrained=pretrained, weights=weights, dist=dist,
                                          device=device)
        if origin:
            log.info("%s", origin)
        state = state or {"epochs_done": 0, "best_miou": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": [],
                          "engine": backend.NAME}
        if state["epochs_done"]:
            session.load_state(checkpoints.folder / TRAINER_STATES, state["epochs_done"] * per_epoch)

        stopped_early = state.get("stopped_early", False)  # a restarted job that had already stopped stays stopped
        for epoch in range(state["epochs_done"], hp.epochs if not stopped_early else 0):
            started = time.perf_counter()
            loss = _train_epoch(session, train_source, epoch, progress)
            metrics = validate(session, val_source, hp.num_classes, epoch).result()
            seconds = time.perf_counter() - started
            log.info("epoch %d/%d: train:loss=%.6f validation:mIOU=%.6f validation:pixel_accuracy=%.6f (%.1f s)",
                     epoch + 1, hp.epochs, loss, metrics.miou, metrics.pixel_accuracy, seconds)
            is_best, stop = track_progress(state, metrics.miou, epoch + 1, hp)
            state["history"].append({
                "epoch": epoch + 1, "train:loss": loss, "validation:mIOU": metrics.miou,
                "validation:pixel_accuracy": metrics.pixel_accuracy, "seconds": round(seconds, 3),
                "per_class_iou": metrics.per_class_iou,
            })
            state["hyperparameters"], state["stopped_early"] = hp.to_json(), stop
            if writes:
                checkpoints.save(session, state, best=is_best)
            if stop:
                log.info("early stopping after epoch %d: mIOU has not improved by more than %g for %d epochs",
                         epoch + 1, hp.early_stopping_tolerance, state["bad_epochs"])
                stopped_early = True
                break

        if writes:
            write_artifact(checkpoints.folder / BEST, hp, classes, model_dir, arch)
            metrics_json = {"best_epoch": state["best_epoch"], "validation:mIOU": state["best_miou"],
                            "stopped_early": stopped_early, "epochs": state["history"], "engine": backend.NAME}
            atomic_write(model_dir / "metrics.json", json.dumps(metrics_json, indent=2).encode())
            write_curves_png(model_dir, metrics_json)
    log.info("best validation:mIOU=%.6f at epoch %d; model written to %s", state["best_miou"], state["best_epoch"],
             model_dir)
    return TrainResult(model_dir, state["epochs_done"], state["best_epoch"], state["best_miou"], stopped_early,
                       state["history"])


def _train_epoch(session, source, epoch, progress) -> float:
    """One pass over the training source; returns the mean batch loss."""
    bar = tqdm(source.epoch(epoch), total=getattr(source, "num_batches", None), desc=f"epoch {epoch + 1}",
               unit="batch", disable=not progress, leave=False)
    for data, label in bar:
        session.step(data, label)
    bar.close()
    loss = session.epoch_loss()
    if loss is None:
        raise TrainingError("the training data produced no batch; check the train channel")
    return loss
