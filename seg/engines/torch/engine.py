"""The torch engine: GluonCV's networks rebuilt in PyTorch (seg.engines.torch.nets), numerically the same, on any
current Python and GPU. The same names as the MXNet engine's (`Inference`, `TrainingSession`, `distributed`,
`export_onnx`); weights go in and out as GluonCV name → array, so files are seg.models.params'.

On a CUDA GPU training runs in mixed precision (bfloat16 where the GPU has it, else float16 with loss scaling)
and channels-last; on the CPU in float32 on every core.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from gt2seg.classes import IGNORE
from seg.config import Hyperparameters
from seg.engines.torch.nets import build, fold_batchnorm
from seg.engines.torch.weights import from_gluon, to_gluon
from seg.errors import DeviceError, TrainingError
from seg.models.arch import Architecture
from seg.train.schedule import HEAD_LR_MULT, learning_rate

NAME = "torch"
log = logging.getLogger("seg.train")
HEADS = ("head.", "auxlayer.")  # freshly initialised layers: HEAD_LR_MULT × the learning rate


def torch_device(device: str = "auto") -> torch.device:
    """auto: the first CUDA GPU when torch sees one, else the CPU; gpu without CUDA is a DeviceError; "auto:N" and
    "gpu:N" take GPU N % count (a serving worker's share); under torchrun, LOCAL_RANK picks the GPU."""
    kind, _, number = device.partition(":")
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("device=gpu but torch sees no CUDA GPU (a CPU build of torch, or no CUDA device); use "
                          "device=cpu or device=auto, or on a GPU host install torch's CUDA build (pip install torch, "
                          "which on Linux is the CUDA build; TORCH_SPEC= for make)")
    index = int(number) if number else int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", index % torch.cuda.device_count())


def check_device(device: str = "auto") -> None:
    """DeviceError now when `device` is one torch cannot use (before a job reads data or fetches weights)."""
    torch_device(device)


def network(arch: Architecture, weights: Optional[dict], where: str, aux_output: bool = False) -> torch.nn.Module:
    """The network of `arch` (initialised as the MXNet engine initialises one), holding `weights` when given."""
    model = build(arch, aux_output=aux_output)
    if weights is not None:
        from_gluon(model, weights, where)
    return model


def _pretrained(model: torch.nn.Module, path: str, arch: Architecture) -> None:
    """ImageNet weights of GluonCV's backbone file into the backbone (its classifier `fc` is not ours)."""
    from seg.errors import PretrainedWeightsError
    from seg.models.arch import STORE_NAMES
    from seg.models.params import plain_names, read_params

    backbone = {k: v for k, v in plain_names(read_params(path)).items() if not k.startswith("fc.")}
    current = to_gluon(model)
    ours = [k for k in current if not k.startswith(HEADS)]
    missing = [k for k in ours if k not in backbone]
    extra = [k for k in backbone if k not in current]
    wrong = [k for k in ours if k in backbone and tuple(backbone[k].shape) != tuple(current[k].shape)]
    if missing or extra or wrong:
        problems = "; ".join(f"{len(v)} {w} ({', '.join(v[:3])})" for w, v in
                             (("missing", missing), ("unexpected", extra), ("of another shape", wrong)) if v)
        raise PretrainedWeightsError(f"{path} does not fit backbone {arch.backbone} ({STORE_NAMES[arch.backbone]}): "
                                     f"{problems}")
    current.update(backbone)
    from_gluon(model, current, str(path))


class Inference:
    """A loaded network for seg.serve.predictor.Predictor (which serialises calls)."""

    def __init__(self, hp: Hyperparameters, arch: Architecture, weights: dict, device: str = "cpu",
                 where: str = "the model"):
        self.device = torch_device(device)
        # BatchNorm folded into the convolutions, channels-last tensors: less time per image (make bench-engines);
        # the same masks, logits within float32 rounding (tests/seg/engines/test_engines_predict_alike.py)
        self.model = fold_batchnorm(network(arch, weights, where)).to(self.device, memory_format=torch.channels_last)

    def _input(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def _logits(self, x: np.ndarray, height: int, width: int) -> torch.Tensor:
        logits = self.model(self._input(x))
        if tuple(logits.shape[2:]) != (height, width):
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=True)
        return logits

    @torch.inference_mode()
    def logits(self, x: np.ndarray) -> np.ndarray:
        """N×C×h×w logits at the input's size."""
        return self.model(self._input(x)).float().cpu().numpy()

    def probabilities(self, x: np.ndarray, height: int, width: int) -> np.ndarray:
        """(C, height, width) float32 softmax of the logits resized to height × width."""
        return torch.softmax(self._logits(x, height, width), dim=1)[0].float().cpu().numpy()

    def mask(self, x: np.ndarray, height: int, width: int) -> np.ndarray:
        """height × width class indices, the argmax taken on the device (softmax keeps the order)."""
        return self._logits(x, height, width).argmax(dim=1)[0].to(torch.uint8).cpu().numpy()


def loss(logits, label: torch.Tensor, aux_weight: float = 0.0) -> torch.Tensor:
    """Mean pixel-wise cross-entropy over non-IGNORE pixels; with (main, aux) logits main + aux_weight × aux
    (GluonCV's MixSoftmaxCrossEntropyLoss, as the MXNet engine computes it)."""
    if isinstance(logits, (tuple, list)):
        main, aux = logits
        return loss(main, label) + aux_weight * loss(aux, label)
    if logits.dtype in (torch.float16, torch.bfloat16):  # autocast: the softmax in float32
        logits = logits.float()
    total = F.cross_entropy(logits, label, ignore_index=IGNORE, reduction="sum")
    return total / (label != IGNORE).sum().clamp(min=1)


class MXNetSGD(torch.optim.Optimizer):
    """MXNet's SGD with momentum: mom = momentum·mom − lr·(grad + wd·w); w += mom. torch's SGD keeps the
    learning rate out of the momentum, which differs whenever the rate changes (every step under poly)."""

    def __init__(self, params, lr: float, momentum: float, weight_decay: float):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:  # torch._foreach_*: one kernel per list, not per tensor (~10% of a step)
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            moms = []
            for p in params:
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                moms.append(state["momentum"])
            torch._foreach_mul_(moms, group["momentum"])
            torch._foreach_add_(moms, grads, alpha=-group["lr"])
            torch._foreach_add_(params, moms)


def _optimizer(hp: Hyperparameters, groups: list) -> torch.optim.Optimizer:
    """The built-in's optimizers with MXNet's settings: weight decay and momentum for sgd and nag (as the MXNet
    engine passes them), gamma1/gamma2 for centered rmsprop, MXNet's epsilons."""
    lr = hp.learning_rate
    if hp.optimizer == "sgd":
        return MXNetSGD(groups, lr, hp.momentum, hp.weight_decay)
    if hp.optimizer == "nag":  # MXNet's NAG is torch's Nesterov SGD, step for step
        return torch.optim.SGD(groups, lr, momentum=hp.momentum, weight_decay=hp.weight_decay, nesterov=True)
    if hp.optimizer == "adam":
        return torch.optim.Adam(groups, lr, betas=(0.9, 0.999), eps=1e-8)
    if hp.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr, eps=1e-7)
    return torch.optim.RMSprop(groups, lr, alpha=hp.gamma1, momentum=hp.gamma2, centered=True, eps=1e-8)


class TrainingSession:
    """The network, its optimizer and the step, for seg.train.loop.

    `pretrained`: GluonCV's ImageNet backbone file; `weights`: full weights (incremental training, resume) as
    GluonCV name → array; `dist`: the `Distributed` of a multi-process job (DDP over the global process group).
    `splits`: each batch goes through the network in that many parts, each normalised by its own BatchNorm
    statistics, their gradients averaged: what MXNet does across a host's GPUs and DDP across processes.
    """

    def __init__(self, hp: Hyperparameters, arch: Architecture, per_epoch: int, pretrained: Optional[str] = None,
                 weights: Optional[dict] = None, dist=None, device: str = "auto", splits: int = 1):
        torch.manual_seed(hp.seed)
        self.device = torch_device(device)
        if self.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(os.cpu_count() or 1)
        self.hp, self.per_epoch, self.dist = hp, per_epoch, dist
        self.aux = arch.aux and hp.aux_loss_weight > 0
        self.model = network(arch, weights, "the initial weights", aux_output=self.aux)
        if pretrained:
            _pretrained(self.model, pretrained, arch)
        if arch.aux and not self.aux:  # kept for the built-in's structure, not trained
            for p in self.model.auxlayer.parameters():
                p.requires_grad_(False)
        if hp.syncbn and dist is not None and self.device.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp = torch.bfloat16 if self.cuda and torch.cuda.is_bf16_supported() else (
            torch.float16 if self.cuda else None)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.net = self.model
        if dist is not None:
            ids = [self.device.index] if self.cuda else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.groups = [{"params": [p for n, p in named if not n.startswith(HEADS)], "mult": 1.0},
                       {"params": [p for n, p in named if n.startswith(HEADS)], "mult": float(HEAD_LR_MULT)}]
        self.optimizer = _optimizer(hp, [g for g in self.groups if g["params"]])
        self.updates, self._losses, self.splits = 0, [], splits

    def _batch(self, data: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)).to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.cuda else x

    def step(self, data: np.ndarray, label: np.ndarray) -> None:
        """One update on a batch (this process's share under DDP); the loss stays on the device until
        `epoch_loss`."""
        self.updates += 1
        rate = learning_rate(self.hp, self.per_epoch, self.updates)
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group["mult"]
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        parts = list(zip(np.array_split(data, self.splits), np.array_split(label, self.splits)))
        for i, (part, part_label) in enumerate(parts):
            target = torch.from_numpy(np.asarray(part_label, dtype=np.int64)).to(self.device, non_blocking=True)
            last = i == len(parts) - 1  # DDP averages the gradients across processes once, after the last part
            with contextlib.nullcontext() if self.dist is None or last else self.net.no_sync():
                with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                    value = loss(self.net(self._batch(part)), target, self.hp.aux_loss_weight) / len(parts)
                (self.scaler.scale(value) if self.scaler is not None else value).backward()
            total = total + value.detach()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self._losses.append(total)

    def epoch_loss(self) -> Optional[float]:
        """The mean batch loss since the last call (None when no batch ran); under DDP averaged over processes,
        whose BatchNorm statistics are averaged too (as the MXNet engine does across hosts)."""
        total = torch.stack(self._losses).sum() if self._losses else torch.zeros((), device=self.device)
        count = torch.tensor(float(len(self._losses)), device=self.device)
        if self.dist is not None:
            import torch.distributed as tdist

            for tensor in (total, count):
                tdist.all_reduce(tensor)
            for name, buffer in self.model.named_buffers():
                if name.endswith(("running_mean", "running_var")):
                    tdist.all_reduce(buffer)
                    buffer /= self.dist.workers
        self._losses = []
        return float(total) / float(count) if float(count) else None

    @torch.inference_mode()
    def predict(self, data: np.ndarray) -> np.ndarray:
        """N×H×W int64 class indices (the main head's argmax)."""
        self.model.eval()
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            logits = self.model(self._batch(data))
        logits = logits[0] if isinstance(logits, (tuple, list)) else logits
        return logits.argmax(dim=1).cpu().numpy().astype(np.int64)

    def weights(self) -> dict:
        return to_gluon(self.model)

    def save_weights(self, path) -> None:
        from seg.models.params import write_params

        write_params(path, self.weights())

    def save_state(self, path) -> None:
        torch.save({"optimizer": self.optimizer.state_dict(), "updates": self.updates,
                    "scaler": self.scaler.state_dict() if self.scaler else None}, path)

    def load_state(self, path, updates: int) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # torch raises several types for a file that is not its own
            raise TrainingError(f"{path}: the optimizer state cannot be read ({type(exc).__name__}); delete the "
                                "checkpoint folder to start over") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.updates = updates

    def set_updates(self, updates: int) -> None:
        self.updates = updates



@contextlib.contextmanager
def distributed(hp: Hyperparameters, resource: Optional[dict]):
    """Join the job's process group (NCCL on GPUs, gloo on the CPU): from torchrun's environment (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT; the process of LOCAL_RANK 0 writes the host's files), or one process
    per host from SageMaker's resourceconfig.json (the first host, sorted, is the rendezvous at $SEG_DIST_ADDR
    or its address, port $SEG_DIST_PORT or 29500). Yields the `Distributed`, or None for a single process."""
    import torch.distributed as tdist

    from seg.train.distributed import Distributed

    env = os.environ
    if resource and int(env.get("WORLD_SIZE", "1")) <= 1:
        hosts = sorted(resource["hosts"])
        rank, world, writes = hosts.index(resource["current_host"]), len(hosts), True
        host = env.get("SEG_DIST_ADDR") or socket.gethostbyname(hosts[0])
        address = f"tcp://{host}:{env.get('SEG_DIST_PORT', '29500')}"
    elif int(env.get("WORLD_SIZE", "1")) > 1:
        rank, world, address = int(env["RANK"]), int(env["WORLD_SIZE"]), "env://"
        writes = env.get("LOCAL_RANK", "0") == "0"
    else:
        yield None
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    tdist.init_process_group(backend, init_method=address, rank=rank, world_size=world)
    log.info("process %d of %d joined the %s process group (%s)", rank, world, backend, address)
    try:
        yield Distributed(rank, world, writes=writes)
    finally:
        tdist.destroy_process_group()


def export_onnx(hp: Hyperparameters, arch: Architecture, weights: dict, metadata: dict):
    """The inference graph as an ONNX model (torch's exporter, dynamic N, H and W), seg's metadata inside."""
    import onnx
    from onnx import helper

    from seg.engines.torch.onnx import export_onnx as export_graph

    model = network(arch, weights, "the model").eval()
    proto = onnx.load_from_string(export_graph(model))
    helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto
