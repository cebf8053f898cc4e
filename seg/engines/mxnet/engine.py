"""The MXNet engine: GluonCV's networks (seg.engines.mxnet.nets) on MXNet 1.9.1, exactly the built-in algorithm's stack.

What an engine supplies (the torch engine has the same names): `Inference` (a loaded network's logits as
probabilities or a mask), `TrainingSession` (the network, its optimizer and one training step), `distributed`
(multi-host set-up), `export_onnx` (the inference graph as ONNX); weights go in and out as GluonCV name → array,
so files are seg.models.params'.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
from pathlib import Path
from typing import Optional

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from gt2seg.classes import IGNORE
from seg.config import Hyperparameters
from seg.errors import DeviceError, ModelError, install_extra_hint
from seg.models.arch import Architecture
from seg.engines.mxnet.gpu import check_gpus
from seg.engines.mxnet.nets import build_network, mxnet_reason
from seg.models.params import encode_params, write_params

NAME = "mxnet"
log = logging.getLogger("seg.train")


def contexts(device: str = "auto") -> list:
    """Every GPU MXNet sees (device auto or gpu), else the CPU; "auto:N"/"gpu:N" take GPU N % count alone (a
    serving worker's share); device=gpu without a GPU is a DeviceError."""
    kind, _, number = device.partition(":")
    gpus = mx.context.num_gpus() if kind != "cpu" else 0
    if kind == "gpu" and not gpus:
        raise DeviceError("device=gpu but MXNet sees no GPU (a CPU build of MXNet, or no CUDA device); "
                          f"use device=cpu, or the mxnet-cu112 build on a GPU host (the 'gpu' extra, "
                          f"{install_extra_hint('gpu')})")
    if not gpus:
        return [mx.cpu()]
    ctx = [mx.gpu(int(number) % gpus)] if number else [mx.gpu(i) for i in range(gpus)]
    check_gpus(ctx)
    return ctx


def check_device(device: str = "auto") -> None:
    """DeviceError now when `device` is one MXNet cannot use (before a job reads data or fetches weights)."""
    contexts(device)


def _set_weights(net, arch: Architecture, weights: dict, ctx, where: str) -> None:
    """Load GluonCV name → array into `net` strictly (through a temporary file: Gluon's loader checks names)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="seg-mx-") as scratch:
        path = Path(scratch) / "w.params"
        path.write_bytes(encode_params(weights))
        try:
            net.load_parameters(str(path), ctx=ctx)
        except (mx.base.MXNetError, AssertionError) as exc:
            raise ModelError(f"{where} does not load into {arch.describe()}: {mxnet_reason(exc)}") from None


def network(hp: Hyperparameters, arch: Architecture, weights: dict, ctx, where: str):
    """The hybridized inference network of `arch` holding `weights`."""
    net = build_network(hp, ctx=ctx, arch=arch)
    _set_weights(net, arch, weights, ctx, where)
    net.hybridize()
    return net


def weights_of(net) -> dict:
    """GluonCV name → float32 array (CPU copies) of a network, in registration order."""
    return {name: p.data(p.list_ctx()[0]).asnumpy() for name, p in net._collect_params_with_prefix().items()}


class Inference:
    """A loaded network; the caller (seg.serve.predictor.Predictor) serialises calls."""

    def __init__(self, hp: Hyperparameters, arch: Architecture, weights: dict, device: str = "cpu",
                 where: str = "the model"):
        self.ctx = contexts(device)[0]
        self.net = network(hp, arch, weights, [self.ctx], where)

    def _logits(self, x: np.ndarray, height: int, width: int):
        logits = self.net(mx.nd.array(x, ctx=self.ctx))
        if logits.shape[2:] != (height, width):
            logits = mx.nd.contrib.BilinearResize2D(logits, height=height, width=width)
        return logits

    def logits(self, x: np.ndarray) -> np.ndarray:
        """N×C×h×w logits at the input's size."""
        return self.net(mx.nd.array(x, ctx=self.ctx)).asnumpy()

    def probabilities(self, x: np.ndarray, height: int, width: int) -> np.ndarray:
        """(C, height, width) float32 softmax of the logits resized to height × width."""
        return mx.nd.softmax(self._logits(x, height, width), axis=1)[0].asnumpy()

    def mask(self, x: np.ndarray, height: int, width: int) -> np.ndarray:
        """height × width class indices, the argmax taken on the device (softmax keeps the order)."""
        return mx.nd.argmax(self._logits(x, height, width), axis=1)[0].asnumpy().astype(np.uint8)


def loss(logits, label, aux_weight=0.0):
    """Mean pixel-wise cross-entropy over non-IGNORE pixels (label float, N×H×W); with (main, aux) logits
    main + aux_weight × aux, GluonCV's MixSoftmaxCrossEntropyLoss."""
    if isinstance(logits, (tuple, list)):
        main, aux = logits
        return loss(main, label) + aux_weight * loss(aux, label)
    F = mx.nd
    valid = label != IGNORE
    safe = F.where(valid, label, F.zeros_like(label))
    nll = -F.pick(F.log_softmax(logits, axis=1), safe, axis=1)
    return F.sum(nll * valid) / F.maximum(F.sum(valid), 1)


def _optimizer(hp: Hyperparameters, per_epoch: int) -> mx.optimizer.Optimizer:
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


class TrainingSession:
    """The network, its Gluon Trainer and the step, for seg.train.loop.

    `init`: a pretrained backbone file (ImageNet) or full weights (incremental training, resume) as
    GluonCV name → array; `dist`: the `Distributed` of a multi-host job.
    """

    def __init__(self, hp: Hyperparameters, arch: Architecture, per_epoch: int, pretrained: Optional[str] = None,
                 weights: Optional[dict] = None, dist=None, device: str = "auto"):
        from seg.engines.mxnet.distributed import DistSync

        mx.random.seed(hp.seed)
        self.ctx = contexts(device)
        self.hp, self.aux = hp, arch.aux and hp.aux_loss_weight > 0
        norm_layer, norm_kwargs = None, None
        if hp.syncbn and len(self.ctx) > 1:
            norm_layer, norm_kwargs = gluon.contrib.nn.SyncBatchNorm, {"num_devices": len(self.ctx)}
        self.net = build_network(hp, self.ctx, pretrained_path=pretrained, norm_layer=norm_layer,
                                 norm_kwargs=norm_kwargs, arch=arch, aux_output=self.aux)
        if weights is not None:
            _set_weights(self.net, arch, weights, self.ctx, "the initial weights")
        if hp.hybridize:
            self.net.hybridize(static_alloc=True)
        self.dist = DistSync(dist.kv, self.net) if dist is not None else None
        self.trainer = gluon.Trainer(self.net.collect_params(), _optimizer(hp, per_epoch),
                                     kvstore=None if self.dist else hp.kvstore)
        self._total, self._batches, self._pending = None, 0, None

    def _split(self, batch):
        return gluon.utils.split_and_load(batch, self.ctx, even_split=False)

    def step(self, data: np.ndarray, label: np.ndarray) -> None:
        """One update on a batch; the loss is kept on the device (read by `epoch_loss`), one step of lag."""
        parts = list(zip(self._split(data), self._split(label.astype(np.float32))))
        with autograd.record():
            losses = [loss(self.net(d), l, self.hp.aux_loss_weight) for d, l in parts]
        autograd.backward(losses)
        if self.dist:
            self.dist.allreduce_gradients()
        # each device's loss is a mean; gradients are summed over devices (and hosts)
        self.trainer.step(len(self.ctx) * (self.dist.workers if self.dist else 1))
        step_loss = sum(l.as_in_context(self.ctx[0]) for l in losses) / len(losses)
        if self._pending is not None:
            self._pending.wait_to_read()  # the engine stays busy, the queue stays bounded
        self._pending = step_loss
        self._total = step_loss if self._total is None else self._total + step_loss
        self._batches += 1

    def epoch_loss(self) -> Optional[float]:
        """The mean batch loss since the last call (None when no batch ran); multi-host: statistics averaged."""
        if self.dist:
            self.dist.average_statistics()
        if not self._batches:
            return None
        loss = float(self._total.asscalar()) / self._batches
        self._total, self._batches, self._pending = None, 0, None
        return loss

    def predict(self, data: np.ndarray) -> np.ndarray:
        """N×H×W int64 class indices (the main head's argmax)."""
        out = []
        for d in self._split(data):
            logits = self.net(d)
            logits = logits[0] if isinstance(logits, (tuple, list)) else logits
            out.append(logits.argmax(axis=1).asnumpy().astype(np.int64))
        return np.concatenate(out)

    def weights(self) -> dict:
        return weights_of(self.net)

    def save_weights(self, path) -> None:
        write_params(path, self.weights())

    def save_state(self, path) -> None:
        self.trainer.save_states(str(path))

    def load_state(self, path, updates: int) -> None:
        if Path(path).exists():
            self.trainer.load_states(str(path))
        self.set_updates(updates)

    def set_updates(self, updates: int) -> None:
        self.trainer.optimizer.begin_num_update = self.trainer.optimizer.num_update = updates


@contextlib.contextmanager
def distributed(hp: Hyperparameters, resource: Optional[dict]):
    """A multi-host job over MXNet's dist_sync kvstore: parameter servers started from resourceconfig.json;
    yields the `Distributed` (rank, workers, kv) the session and the loop use, or None for one host."""
    from seg.engines.mxnet.distributed import _stop, start_parameter_servers
    from seg.train.distributed import Distributed

    if not resource:
        yield None
        return
    servers = start_parameter_servers(resource)
    kv = mx.kv.create(hp.kvstore if hp.kvstore.startswith("dist") else "dist_sync")
    dist = Distributed(kv.rank, kv.num_workers, kv)
    try:
        yield dist
    finally:
        # the last reference goes (the caller's `dist` holds it too): the worker leaves the cluster (ps-lite
        # finalize), which lets servers and scheduler exit; while one is left, all of them wait for ever
        dist.handle = None
        del kv
        gc.collect()
        _stop(servers)


def export_onnx(hp: Hyperparameters, arch: Architecture, weights: dict, metadata: dict):
    """The inference graph as an ONNX model (seg.engines.mxnet.to_onnx's translation of the hybridized symbol)."""
    from seg.engines.mxnet.to_onnx import symbol_to_onnx
    from seg.serve.onnx_predictor import INPUT

    net = network(hp, arch, weights, [mx.cpu()], "the model")
    symbol = net(mx.sym.var(INPUT))
    params = {p.name: p.data(mx.cpu()).asnumpy() for p in net.collect_params().values()}
    return symbol_to_onnx(symbol.tojson(), params, arch.num_classes, metadata)


def export_symbol(hp: Hyperparameters, arch: Architecture, weights: dict, out_dir, prefix: str) -> tuple:
    """`prefix`-symbol.json + `prefix`-0000.params (any input H×W), atomically renamed into `out_dir`."""
    from gt2seg.atomic import atomic_files

    net = network(hp, arch, weights, [mx.cpu()], "the model")
    net(mx.nd.zeros((1, 3, hp.crop_size, hp.crop_size)))
    names = (f"{prefix}-symbol.json", f"{prefix}-0000.params")
    with atomic_files(Path(out_dir), names) as tmp:
        net.export(os.path.join(tmp, prefix), epoch=0)
    return tuple(Path(out_dir) / n for n in names)
