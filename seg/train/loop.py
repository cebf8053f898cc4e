"""The training loop."""
from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
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
from seg.models.artifact import check_compatible, open_model, read_model, save_artifact
from seg.models.gpu import check_gpus
from seg.models.nets import architecture_for, build_network
from seg.models.pretrained import resolve_pretrained
from seg.report import write_curves_png
from seg.train.checkpoints import BEST, LAST, TRAINER_STATES, Checkpoints, _resume_state, track_progress
from seg.train.distributed import DistSync

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


def contexts() -> list:
    """Every GPU of the host, else the CPU."""
    gpus = mx.context.num_gpus()
    return [mx.gpu(i) for i in range(gpus)] if gpus else [mx.cpu()]


def seg_loss(F, logits, label, aux_weight=0.0):
    """Mean pixel-wise cross-entropy over non-IGNORE pixels (label float, N×H×W).

    `logits` may be (main, auxiliary): then main + aux_weight × auxiliary, GluonCV's MixSoftmaxCrossEntropyLoss.
    """
    if isinstance(logits, (tuple, list)):
        main, aux = logits
        return seg_loss(F, main, label) + aux_weight * seg_loss(F, aux, label)
    valid = label != IGNORE
    safe = F.where(valid, label, F.zeros_like(label))
    nll = -F.pick(F.log_softmax(logits, axis=1), safe, axis=1)
    return F.sum(nll * valid) / F.maximum(F.sum(valid), 1)


def iterations_per_epoch(hp: Hyperparameters, workers: int = 1) -> int:
    return max(1, math.ceil(hp.num_training_samples / (hp.mini_batch_size * workers)))


def make_optimizer(hp: Hyperparameters, per_epoch: int) -> mx.optimizer.Optimizer:
    total = hp.epochs * per_epoch
    if hp.lr_scheduler == "poly":
        scheduler = mx.lr_scheduler.PolyScheduler(max(1, total), hp.learning_rate, pwr=0.9)
    elif hp.lr_scheduler == "cosine":
        scheduler = mx.lr_scheduler.CosineScheduler(max(1, total), hp.learning_rate)
    else:
        scheduler = mx.lr_scheduler.MultiFactorScheduler(
            [e * per_epoch for e in hp.lr_scheduler_step], hp.lr_scheduler_factor, base_lr=hp.learning_rate
        )
    kwargs = {"learning_rate": hp.learning_rate, "lr_scheduler": scheduler}
    if hp.optimizer in ("sgd", "nag"):  # the built-in documents momentum and weight_decay for sgd
        kwargs.update(momentum=hp.momentum, wd=hp.weight_decay)
    if hp.optimizer == "rmsprop":
        kwargs.update(gamma1=hp.gamma1, gamma2=hp.gamma2, centered=True)
    return mx.optimizer.create(hp.optimizer, **kwargs)


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


def _split(batch, ctx):
    return gluon.utils.split_and_load(batch, ctx, even_split=False)


def validate(net, source, num_classes, ctx, epoch=0) -> ConfusionAccumulator:
    """Confusion matrix over every batch of `source` (the whole validation set, once)."""
    acc = ConfusionAccumulator(num_classes)
    for data, label in source.epoch(epoch):
        for d, l in zip(_split(data, ctx), _split(label, ctx)):
            logits = net(d)
            logits = logits[0] if isinstance(logits, (tuple, list)) else logits  # training net: (main, aux)
            pred = logits.argmax(axis=1).asnumpy().astype(np.int64)
            acc.update(pred, l.asnumpy())
    return acc


def train(
    hp: Hyperparameters,
    inputs: Inputs,
    model_dir,
    checkpoint_dir=None,
    ctx=None,
    progress: bool = True,
    kvstore=None,
    shard=(0, 1),
) -> TrainResult:
    """Train, keep the best model by validation mIOU, write the artifact to `model_dir`.

    `ctx`: devices (default every GPU, else the CPU). `kvstore`: a dist kvstore for multi-host jobs, with
    `shard` = (rank, workers) so each host reads its share of the training pairs. A GPU MXNet cannot run on
    (seg.models.gpu) fails here with DeviceError, before any work.
    """
    ctx = ctx or contexts()
    check_gpus(ctx)
    model_dir = Path(model_dir)
    mx.random.seed(hp.seed)
    np.random.seed(hp.seed)
    train_source, val_source = make_sources(hp, inputs, shard)
    classes = inputs.classes or ClassTable.default(hp.num_classes).entries()
    if len(classes) != hp.num_classes:
        raise TrainingError(f"classes.json lists {len(classes)} classes but num_classes={hp.num_classes}")

    with tempfile.TemporaryDirectory(prefix="seg-train-") as scratch:
        checkpoints = Checkpoints(checkpoint_dir or Path(scratch) / "checkpoints")
        state = _resume_state(checkpoints, hp)
        init_params, arch = None, architecture_for(hp)
        if inputs.init_model is not None:  # seg's artifact or the built-in's, in the model's own architecture
            init = read_model(open_model(inputs.init_model, Path(scratch) / "init-model"))
            check_compatible(init.hp, hp, str(inputs.init_model), init.stated)
            init_params, arch = (init.params if state is None else None), init.arch
        pretrained = None
        if hp.use_pretrained_model and state is None and inputs.init_model is None:
            pretrained = resolve_pretrained(hp, scratch)
        norm_layer, norm_kwargs = None, None
        if hp.syncbn and len(ctx) > 1:
            norm_layer, norm_kwargs = gluon.contrib.nn.SyncBatchNorm, {"num_devices": len(ctx)}
        net = build_network(hp, ctx, pretrained_path=pretrained, norm_layer=norm_layer, norm_kwargs=norm_kwargs,
                            arch=arch, aux_output=arch.aux and hp.aux_loss_weight > 0)
        if state is not None:
            net.load_parameters(str(checkpoints.folder / LAST), ctx=ctx)
            log.info("resuming from %s after epoch %d", checkpoints.folder, state["epochs_done"])
        elif init_params is not None:
            net.load_parameters(str(init_params), ctx=ctx)
            log.info("incremental training from %s", inputs.init_model)
        if hp.hybridize:
            net.hybridize(static_alloc=True)

        dist = DistSync(kvstore, net) if kvstore is not None else None
        workers = kvstore.num_workers if kvstore is not None else 1
        per_epoch = iterations_per_epoch(hp, workers)
        trainer = gluon.Trainer(net.collect_params(), make_optimizer(hp, per_epoch),
                                kvstore=None if dist else hp.kvstore)
        state = state or {"epochs_done": 0, "best_miou": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}
        if state["epochs_done"]:
            trainer.load_states(str(checkpoints.folder / TRAINER_STATES))
        trainer.optimizer.begin_num_update = trainer.optimizer.num_update = state["epochs_done"] * per_epoch

        stopped_early = state.get("stopped_early", False)  # a restarted job that had already stopped stays stopped
        for epoch in range(state["epochs_done"], hp.epochs if not stopped_early else 0):
            started = time.perf_counter()
            loss = _train_epoch(net, trainer, train_source, ctx, epoch, hp, progress, dist)
            if dist:
                dist.average_statistics()
            metrics = validate(net, val_source, hp.num_classes, ctx, epoch).result()
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
            checkpoints.save(net, trainer, state, best=is_best)
            if stop:
                log.info("early stopping after epoch %d: mIOU has not improved by more than %g for %d epochs",
                         epoch + 1, hp.early_stopping_tolerance, state["bad_epochs"])
                stopped_early = True
                break

        save_artifact(checkpoints.folder / BEST, hp, classes, model_dir, arch)
        metrics_json = {"best_epoch": state["best_epoch"], "validation:mIOU": state["best_miou"],
                        "stopped_early": stopped_early, "epochs": state["history"]}
        atomic_write(model_dir / "metrics.json", json.dumps(metrics_json, indent=2).encode())
        write_curves_png(model_dir, metrics_json)
    log.info("best validation:mIOU=%.6f at epoch %d; model written to %s", state["best_miou"], state["best_epoch"],
             model_dir)
    return TrainResult(model_dir, state["epochs_done"], state["best_epoch"], state["best_miou"], stopped_early,
                       state["history"])


def _train_epoch(net, trainer, source, ctx, epoch, hp, progress, dist=None) -> float:
    """One pass over the training source; returns the mean batch loss."""
    total, batches, pending = None, 0, None
    bar = tqdm(source.epoch(epoch), total=getattr(source, "num_batches", None), desc=f"epoch {epoch + 1}",
               unit="batch", disable=not progress, leave=False)
    for data, label in bar:
        data_parts, label_parts = _split(data, ctx), _split(label.astype(np.float32), ctx)
        with autograd.record():
            losses = [seg_loss(mx.nd, net(d), l, hp.aux_loss_weight) for d, l in zip(data_parts, label_parts)]
        autograd.backward(losses)
        if dist:
            dist.allreduce_gradients()
        # each device's loss is a mean; gradients are summed over devices (and hosts)
        trainer.step(len(ctx) * (dist.workers if dist else 1))
        step_loss = sum(l.as_in_context(ctx[0]) for l in losses) / len(losses)
        if pending is not None:
            pending.wait_to_read()  # one step of lag: the engine stays busy, the queue stays bounded
        pending = step_loss
        total = step_loss if total is None else total + step_loss
        batches += 1
    bar.close()
    if not batches:
        raise TrainingError("the training data produced no batch; check the train channel")
    return float(total.asscalar()) / batches
