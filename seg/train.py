"""The training loop: sources → network → epochs with validation, early stopping, checkpoints, artifact.

Per epoch it logs one line that SageMaker metric definitions can parse:

    epoch 3/10: train:loss=0.412345 validation:mIOU=0.654321 validation:pixel_accuracy=0.901234 (12.3 s)

Regexes: `train:loss=([0-9.eE+-]+)`, `validation:mIOU=([0-9.]+)`, `validation:pixel_accuracy=([0-9.]+)`.
The same figures go to `metrics.json` in the model folder. Quirks of GluonCV's train.py deliberately not
copied: validation covers every image once (no rollover, no dropped tail), no per-iteration waitall (one
step of lag bounds the queue instead), masks are padded with IGNORE, not background.
"""
from __future__ import annotations

import gc
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

from seg.config import Hyperparameters
from seg.contract import write_atomic
from seg.data import IGNORE, FileSource, default_classes, load_label_map, train_transform, val_transform
from seg.metrics import ConfusionAccumulator
from seg.model import (
    MUST_MATCH, PARAMS, build_network, check_compatible, read_artifact_hyperparameters, resolve_pretrained,
    save_artifact, save_params, unpack_model_dir,
)

log = logging.getLogger("seg.train")
STATE, LAST, BEST, TRAINER_STATES = "state.json", "last.params", "best.params", "trainer.states"
RESUME_MUST_MATCH = MUST_MATCH + ("mini_batch_size", "optimizer", "learning_rate", "lr_scheduler")


class TrainingError(Exception):
    """Training cannot start or go on (bad checkpoint, empty data, ...); the message says why and what to do."""


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


def seg_loss(F, logits, label):
    """Mean pixel-wise cross-entropy over non-IGNORE pixels (label float, N×H×W)."""
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
        ("train", train_transform(hp), hp.mini_batch_size, True),
        ("validation", val_transform(hp), hp.validation_mini_batch_size, False),
    ):
        if split in inputs.pipe_channels:
            from seg.pipe import PipeSource

            sources.append(PipeSource(
                inputs.pipe_dir, split, transform=transform, batch_size=batch, shuffle_buffer=4 * batch if shuffle
                else 0, seed=hp.seed, wait_timeout=None, workers=max(1, hp.data_workers),
                label_map=load_label_map(inputs.channels.get("label_map"), split),
            ))
        else:
            sources.append(FileSource(inputs.channels, split, transform, batch, shuffle=shuffle, seed=hp.seed,
                                      workers=hp.data_workers, shard=shard if split == "train" else (0, 1)))
    return tuple(sources)


def _split(batch, ctx):
    return gluon.utils.split_and_load(batch, ctx, even_split=False)


def validate(net, source, num_classes, ctx, epoch=0) -> ConfusionAccumulator:
    """Confusion matrix over every batch of `source` (the whole validation set, once)."""
    acc = ConfusionAccumulator(num_classes)
    for data, label in source.epoch(epoch):
        for d, l in zip(_split(data, ctx), _split(label, ctx)):
            pred = net(d).argmax(axis=1).asnumpy().astype(np.int64)
            acc.update(pred, l.asnumpy())
    return acc


class Checkpoints:
    """`checkpoints/`: last and best parameters, trainer states and state.json (written last = commit)."""

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

    def save(self, net, trainer, state: dict, best: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        save_params(net, self.folder / LAST)
        if best:
            shutil.copyfile(self.folder / LAST, self.folder / (".tmp-" + BEST))
            os.replace(self.folder / (".tmp-" + BEST), self.folder / BEST)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".trainer.")
        os.close(fd)
        trainer.save_states(tmp)
        os.replace(tmp, self.folder / TRAINER_STATES)
        write_atomic(self.folder / STATE, json.dumps(state, indent=2).encode())


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


def _resume_state(checkpoints: Checkpoints, hp: Hyperparameters) -> Optional[dict]:
    state = checkpoints.state()
    if state is None:
        return None
    saved = state.get("hyperparameters", {})
    diffs = [k for k in RESUME_MUST_MATCH if str(saved.get(k)) != str(hp.to_json()[k])]
    if diffs:
        raise TrainingError(
            f"the checkpoint in {checkpoints.folder} was written with different {', '.join(diffs)}; "
            "restore those hyperparameters or delete the checkpoint folder to start over"
        )
    return state


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
    `shard` = (rank, workers) so each host reads its share of the training pairs.
    """
    ctx = ctx or contexts()
    model_dir = Path(model_dir)
    mx.random.seed(hp.seed)
    np.random.seed(hp.seed)
    train_source, val_source = make_sources(hp, inputs, shard)
    classes = inputs.classes or default_classes(hp.num_classes)
    if len(classes) != hp.num_classes:
        raise TrainingError(f"classes.json lists {len(classes)} classes but num_classes={hp.num_classes}")

    with tempfile.TemporaryDirectory(prefix="seg-train-") as scratch:
        checkpoints = Checkpoints(checkpoint_dir or Path(scratch) / "checkpoints")
        state = _resume_state(checkpoints, hp)
        init_params = None
        if inputs.init_model is not None and state is None:
            init_dir = unpack_model_dir(inputs.init_model, Path(scratch) / "init-model")
            check_compatible(read_artifact_hyperparameters(init_dir), hp, str(inputs.init_model))
            init_params = init_dir / PARAMS
        pretrained = None
        if hp.use_pretrained_model and state is None and inputs.init_model is None:
            pretrained = resolve_pretrained(hp, scratch)
        norm_layer, norm_kwargs = None, None
        if hp.syncbn and len(ctx) > 1:
            norm_layer, norm_kwargs = gluon.contrib.nn.SyncBatchNorm, {"num_devices": len(ctx)}
        net = build_network(hp, ctx, pretrained_path=pretrained, norm_layer=norm_layer, norm_kwargs=norm_kwargs)
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

        save_artifact(checkpoints.folder / BEST, hp, classes, model_dir)
        metrics_json = {"best_epoch": state["best_epoch"], "validation:mIOU": state["best_miou"],
                        "stopped_early": stopped_early, "epochs": state["history"]}
        write_atomic(model_dir / "metrics.json", json.dumps(metrics_json, indent=2).encode())
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
            losses = [seg_loss(mx.nd, net(d), l) for d, l in zip(data_parts, label_parts)]
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


# ---------------------------------------------------------------- entry points


def _classes_near(*folders) -> Optional[list]:
    from seg.data import load_classes

    for folder in folders:
        if folder is not None and (Path(folder) / "classes.json").is_file():
            return load_classes(Path(folder) / "classes.json")
    return None


def complete_hyperparameters(raw: dict, inputs: Inputs) -> dict:
    """Fill num_classes (from classes.json) and num_training_samples (from the train folder) when absent."""
    from seg.data import pair_files

    values = dict(raw)
    if "num_classes" not in values and inputs.classes:
        values["num_classes"] = len(inputs.classes)
    if "num_training_samples" not in values and "train" not in inputs.pipe_channels:
        values["num_training_samples"] = len(pair_files(inputs.channels["train"], inputs.channels["train_annotation"]))
    return values


def train_layout(data, model_dir, hyperparameters: dict, checkpoint_dir=None, progress=True) -> TrainResult:
    """`seg train --data`: a local layout folder or an s3:// prefix holding one (downloaded first)."""
    from seg.config import parse_hyperparameters
    from seg.data import layout_channels

    with tempfile.TemporaryDirectory(prefix="seg-data-") as scratch:
        data = str(data)
        if data.startswith("s3://"):
            from gt2seg.storage import download_tree

            root = Path(scratch) / "layout"
            download_tree(data, root)
        else:
            root = Path(data)
        inputs = Inputs(layout_channels(root), classes=_classes_near(root))
        hp = parse_hyperparameters(complete_hyperparameters(hyperparameters, inputs))
        return train(hp, inputs, model_dir, checkpoint_dir=checkpoint_dir, progress=progress)


class DistSync:
    """Multi-host data parallelism over MXNet's dist_sync kvstore, driven from the training loop.

    Gluon's Trainer initialises the kvstore one key at a time, which races when several workers and servers
    share a machine ("init N first", apache/mxnet#7893); one batched init avoids that. Gradients are summed
    across devices and hosts with pushpull; BatchNorm running statistics, which have no gradient, are
    averaged after each epoch so every host validates and saves the same model.
    """

    def __init__(self, kv, net):
        self.kv, self.workers = kv, kv.num_workers
        params = list(net.collect_params().values())
        self.trained = [p for p in params if p.grad_req != "null"]
        self.statistics = [p for p in params if p.grad_req == "null"]
        everything = self.trained + self.statistics
        keys = list(range(len(everything)))
        kv.init(keys, [mx.nd.array(p.list_data()[0].asnumpy()) for p in everything])
        for key, param in enumerate(everything):  # all hosts start from rank 0's weights
            plain = [mx.nd.zeros(param.shape, ctx=c, dtype=param.dtype) for c in param.list_ctx()]
            kv.pull(key, out=plain)
            for source, target in zip(plain, param.list_data()):
                source.copyto(target)
        mx.nd.waitall()

    def _pushpull(self, key, arrays):
        if arrays[0].context.device_type != "cpu":
            self.kv.pushpull(key, arrays, priority=-key)
            return
        # CPU arrays may be in an MKL-DNN layout, which the dist kvstore cannot send: go through plain copies
        plain = [mx.nd.array(a.asnumpy(), ctx=a.context) for a in arrays]
        self.kv.pushpull(key, plain, priority=-key)
        for source, target in zip(plain, arrays):
            source.copyto(target)

    def allreduce_gradients(self):
        for key, param in enumerate(self.trained):
            self._pushpull(key, param.list_grad())

    def average_statistics(self):
        for key, param in enumerate(self.statistics, start=len(self.trained)):
            self._pushpull(key, param.list_data())
            for array in param.list_data():
                array /= self.workers * len(param.list_data())
        mx.nd.waitall()


def start_parameter_servers(resource: dict) -> list:
    """MXNet's parameter-server roles for a multi-host job, from resourceconfig.json.

    Every host runs `seg train`; the first host (sorted names) also starts the scheduler, every host one
    server, and this process becomes a worker, so SageMaker's plain `train` on N instances forms one
    dist_sync job. $SEG_PS_ROOT_URI / $SEG_PS_ROOT_PORT override the scheduler's address (first host's
    name, port 9091), e.g. to run several "hosts" on one machine.
    """
    hosts = sorted(resource["hosts"])
    env = {
        "DMLC_PS_ROOT_URI": os.environ.get("SEG_PS_ROOT_URI") or socket.gethostbyname(hosts[0]),
        "DMLC_PS_ROOT_PORT": os.environ.get("SEG_PS_ROOT_PORT", "9091"),
        "DMLC_NUM_SERVER": str(len(hosts)),
        "DMLC_NUM_WORKER": str(len(hosts)),
    }
    if resource.get("network_interface_name") and "DMLC_NODE_HOST" not in os.environ:
        env["DMLC_INTERFACE"] = resource["network_interface_name"]
    roles = (["scheduler"] if resource["current_host"] == hosts[0] else []) + ["server"]
    servers = [subprocess.Popen([sys.executable, "-c", "import mxnet"], env={**os.environ, **env, "DMLC_ROLE": role})
               for role in roles]  # importing mxnet with DMLC_ROLE=server/scheduler runs that role until done
    os.environ.update(env, DMLC_ROLE="worker")
    log.info("host %s of %s: dist kvstore via %s:%s", resource["current_host"], hosts, env["DMLC_PS_ROOT_URI"],
             env["DMLC_PS_ROOT_PORT"])
    return servers


def _stop(processes, timeout=60):
    """Servers and the scheduler exit once every worker has finished; reap them (kill only if stuck)."""
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_training_job(opt, progress=False) -> TrainResult:
    """The SageMaker training entry point over an OptML root; any failure lands in output/failure, then re-raises."""
    from seg.config import parse_hyperparameters

    try:
        modes = {name: opt.input_mode(name) for name in opt.input_data_config()}
        names = set(modes) | {"train", "train_annotation", "validation", "validation_annotation", "label_map"}
        channels = {name: opt.channel_dir(name) for name in names if modes.get(name, "File") == "File"}
        model_channel = opt.channel_dir("model")
        init_model = model_channel if model_channel.is_dir() and any(model_channel.iterdir()) else None
        inputs = Inputs(
            channels, pipe_channels=tuple(n for n, m in modes.items() if m == "Pipe"), pipe_dir=opt.data_dir,
            classes=_classes_near(opt.channel_dir("label_map"), opt.channel_dir("classes")), init_model=init_model,
        )
        hp = parse_hyperparameters(complete_hyperparameters(opt.hyperparameters(), inputs))
        resource = opt.resource_config() or {}
        if len(resource.get("hosts", [])) <= 1:
            return train(hp, inputs, opt.model_dir, checkpoint_dir=opt.checkpoints_dir, progress=progress)
        if inputs.pipe_channels:
            raise TrainingError("Pipe mode streams every record to every host; use File mode with "
                                "S3DistributionType=FullyReplicated for multi-host training")
        servers = start_parameter_servers(resource)
        kv = mx.kv.create(hp.kvstore if hp.kvstore.startswith("dist") else "dist_sync")
        try:
            return train(hp, inputs, opt.model_dir, checkpoint_dir=opt.checkpoints_dir, progress=progress,
                         kvstore=kv, shard=(kv.rank, kv.num_workers))
        finally:
            del kv  # the worker leaves the cluster (ps-lite finalize), which lets servers and scheduler exit
            gc.collect()
            _stop(servers)
    except Exception as exc:  # the contract: every failure is reported in output/failure
        known = isinstance(exc, (ValueError, TrainingError)) or type(exc).__module__.startswith(("seg", "gt2seg"))
        opt.write_failure(str(exc) if known else f"internal error: {type(exc).__name__}: {exc}")
        raise
