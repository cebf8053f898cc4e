"""FCN / PSP / DeepLabV3 on GluonCV's dilated ResNets; pretrained weights; the model artifact.

Why our own heads instead of GluonCV's FCN/PSPNet/DeepLabV3 classes: those hard-code 2048 input channels
(so ResNet-18/34 cannot be used) and bake the crop size into their upsampling and pooling, so a hybridized
or exported graph only runs at the training crop. Here every resize is "like the input", so one hybridized
graph (and the exported symbol) serves any image size. The backbones are GluonCV's own (`resnet50_v1s`,
`resnet101_v1s`, `resnet18_v1b`, `resnet34_v1b`, dilated to output stride 8), so GluonCV's ImageNet weight
files load into them unchanged.

Artifact layout (`model/`): `model.params` (Gluon parameters), `hyperparameters.json`, `classes.json`, and
`model-symbol.json` + `model-0000.params` (exported graph: input `data` float32 N×3×H×W normalised with
ImageNet mean/std, output N×C×H×W logits), loadable with `mx.gluon.SymbolBlock.imports` without `seg`.
"""
from __future__ import annotations

import glob
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import mxnet as mx
from gluoncv.model_zoo.resnetv1b import resnet18_v1b, resnet34_v1b, resnet50_v1s, resnet101_v1s
from mxnet.gluon import nn

from seg.config import HyperparameterError, Hyperparameters, parse_hyperparameters
from seg.contract import write_atomic
from seg.data import default_classes, load_classes

# backbone → (GluonCV constructor, GluonCV model-store name, channels of layer3 output, of layer4 output)
BACKBONES = {
    "resnet-18": (resnet18_v1b, "resnet18_v1b", 256, 512),
    "resnet-34": (resnet34_v1b, "resnet34_v1b", 256, 512),
    "resnet-50": (resnet50_v1s, "resnet50_v1s", 1024, 2048),
    "resnet-101": (resnet101_v1s, "resnet101_v1s", 1024, 2048),
}
PARAMS, HYPERPARAMETERS, CLASSES = "model.params", "hyperparameters.json", "classes.json"
EXPORT_PREFIX = "model"  # → model-symbol.json, model-0000.params
MUST_MATCH = ("backbone", "algorithm", "crop_size", "num_classes")  # incremental training (SAGEMAKER_SPEC §1.5)


class ModelError(Exception):
    """A model artifact or pretrained weight file is missing, unreadable or incompatible."""


class PretrainedWeightsError(ModelError):
    """use_pretrained_model=True but no usable ImageNet weights were found where we looked."""


# ---------------------------------------------------------------- network


def _conv_bn_relu(channels, kernel, in_channels, norm_layer, norm_kwargs, dilation=1):
    block = nn.HybridSequential(prefix="")
    block.add(nn.Conv2D(channels, kernel, padding=dilation * (kernel // 2), dilation=dilation,
                        in_channels=in_channels, use_bias=False))
    block.add(norm_layer(in_channels=channels, **norm_kwargs))
    block.add(nn.Activation("relu"))
    return block


class FCNHead(nn.HybridBlock):
    """3×3 conv (to in/4 channels by default), dropout, 1×1 classifier: GluonCV's FCN head sized to the backbone."""

    def __init__(self, in_channels, nclass, norm_layer, norm_kwargs, inter_channels=None):
        super().__init__()
        inter_channels = inter_channels or in_channels // 4
        with self.name_scope():
            self.block = nn.HybridSequential(prefix="")
            self.block.add(_conv_bn_relu(inter_channels, 3, in_channels, norm_layer, norm_kwargs))
            self.block.add(nn.Dropout(0.1))
            self.block.add(nn.Conv2D(nclass, 1, in_channels=inter_channels))

    def hybrid_forward(self, F, x):
        return self.block(x)


class PSPHead(nn.HybridBlock):
    """Pyramid pooling (1, 2, 3, 6 bins), each branch resized like the features, then the FCN-style classifier."""

    BINS = (1, 2, 3, 6)

    def __init__(self, in_channels, nclass, norm_layer, norm_kwargs):
        super().__init__()
        reduced = in_channels // 4
        with self.name_scope():
            self.branches = nn.HybridSequential(prefix="")
            for _ in self.BINS:
                self.branches.add(_conv_bn_relu(reduced, 1, in_channels, norm_layer, norm_kwargs))
            self.classifier = FCNHead(2 * in_channels, nclass, norm_layer, norm_kwargs)

    def hybrid_forward(self, F, x):
        pooled = [
            F.contrib.BilinearResize2D(branch(F.contrib.AdaptiveAvgPooling2D(x, output_size=bins)), x, mode="like")
            for bins, branch in zip(self.BINS, self.branches)
        ]
        return self.classifier(F.concat(x, *pooled, dim=1))


class ASPPHead(nn.HybridBlock):
    """DeepLabV3's atrous spatial pyramid pooling (rates 12, 24, 36 + image pooling), then a classifier."""

    RATES = (12, 24, 36)

    def __init__(self, in_channels, nclass, norm_layer, norm_kwargs, channels=256):
        super().__init__()
        with self.name_scope():
            self.branches = nn.HybridSequential(prefix="")
            self.branches.add(_conv_bn_relu(channels, 1, in_channels, norm_layer, norm_kwargs))
            for rate in self.RATES:
                self.branches.add(_conv_bn_relu(channels, 3, in_channels, norm_layer, norm_kwargs, dilation=rate))
            self.image_pool = _conv_bn_relu(channels, 1, in_channels, norm_layer, norm_kwargs)
            self.project = _conv_bn_relu(channels, 1, 5 * channels, norm_layer, norm_kwargs)
            self.dropout = nn.Dropout(0.5)
            self.classifier = FCNHead(channels, nclass, norm_layer, norm_kwargs, inter_channels=channels)

    def hybrid_forward(self, F, x):
        outs = [branch(x) for branch in self.branches]
        pooled = self.image_pool(F.contrib.AdaptiveAvgPooling2D(x, output_size=1))
        outs.append(F.contrib.BilinearResize2D(pooled, x, mode="like"))
        return self.classifier(self.dropout(self.project(F.concat(*outs, dim=1))))


HEADS = {"fcn": FCNHead, "psp": PSPHead, "deeplab": ASPPHead}


class SegNet(nn.HybridBlock):
    """Dilated backbone → head → logits resized to the input's height and width (any input size)."""

    def __init__(self, backbone, head):
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(backbone, name))
        self.head = head

    def hybrid_forward(self, F, x):
        y = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        y = self.layer4(self.layer3(self.layer2(self.layer1(y))))
        return F.contrib.BilinearResize2D(self.head(y), x, mode="like")


def _init():
    return mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)


def build_network(hp: Hyperparameters, ctx=None, pretrained_path=None, norm_layer=None, norm_kwargs=None) -> SegNet:
    """An initialised network for `hp`; backbone weights from `pretrained_path` when given."""
    ctx = ctx or [mx.cpu()]
    norm_layer = norm_layer or nn.BatchNorm
    norm_kwargs = norm_kwargs or {}
    make_backbone, _, _, channels = BACKBONES[hp.backbone]
    backbone = make_backbone(pretrained=False, dilated=True, norm_layer=norm_layer, norm_kwargs=norm_kwargs)
    if pretrained_path:
        try:
            backbone.load_parameters(str(pretrained_path), ctx=ctx)
        except (mx.base.MXNetError, AssertionError, ValueError) as exc:
            raise PretrainedWeightsError(
                f"{pretrained_path} does not fit backbone {hp.backbone} ({BACKBONES[hp.backbone][1]}): "
                f"{str(exc).splitlines()[0]}"
            ) from None
    else:
        backbone.initialize(_init(), ctx=ctx)
    head = HEADS[hp.algorithm](channels, hp.num_classes, norm_layer, norm_kwargs)
    head.initialize(_init(), ctx=ctx)
    head.collect_params().setattr("lr_mult", 10)  # fresh decoder learns faster than the backbone (GluonCV)
    net = SegNet(backbone, head)
    if not pretrained_path:  # GluonCV's convs infer in_channels: one small forward materialises them
        net(mx.nd.zeros((1, 3, 32, 32), ctx=ctx[0]))
    return net


def pretrained_candidates(hp: Hyperparameters) -> list:
    """Where `resolve_pretrained` looks, in order (for the error message too)."""
    store = hp.resolved_model_store()
    name = BACKBONES[hp.backbone][1]
    if store.endswith(".params"):
        return [store]
    return [store.rstrip("/") + f"/{name}.params", str(Path(store) / f"{name}-*.params")]


def resolve_pretrained(hp: Hyperparameters, cache_dir) -> str:
    """A local path to the ImageNet weights of hp.backbone (downloaded to cache_dir when the store is s3://)."""
    from gt2seg.errors import Gt2SegError
    from gt2seg.storage import is_s3, read_bytes

    candidates = pretrained_candidates(hp)
    for candidate in candidates:
        if is_s3(candidate):
            try:
                data = read_bytes(candidate)
            except Gt2SegError:
                continue
            local = Path(cache_dir) / os.path.basename(candidate)
            write_atomic(local, data)
            return str(local)
        matches = sorted(glob.glob(candidate))
        if matches:
            return matches[-1]
    name = BACKBONES[hp.backbone][1]
    raise PretrainedWeightsError(
        f"use_pretrained_model=True but no ImageNet weights for backbone {hp.backbone} were found; looked for "
        f"{' and '.join(c for c in candidates if not is_s3(c) or c.startswith('s3://'))}. Put GluonCV's {name} "
        f"weights there (on a machine with network: gluoncv.model_zoo.get_model('{name}', pretrained=True) saves "
        f"~/.mxnet/models/{name}-<hash>.params), or point the model_store hyperparameter (or $SEG_MODEL_STORE) at "
        "a folder, an s3:// prefix or a .params file, or set use_pretrained_model=False"
    )


# ---------------------------------------------------------------- artifact


@dataclass
class Artifact:
    net: SegNet
    hp: Hyperparameters
    classes: list


def export_symbol(net: SegNet, hp: Hyperparameters, model_dir: Path) -> None:
    """Hybridize and export `model-symbol.json` + `model-0000.params` (atomically renamed into place)."""
    net.hybridize()
    ctx = list(net.collect_params().values())[0].list_ctx()[0]
    net(mx.nd.zeros((1, 3, hp.crop_size, hp.crop_size), ctx=ctx))
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".export-") as tmp:
        net.export(os.path.join(tmp, EXPORT_PREFIX), epoch=0)
        for name in (f"{EXPORT_PREFIX}-symbol.json", f"{EXPORT_PREFIX}-0000.params"):
            os.replace(os.path.join(tmp, name), model_dir / name)


def save_params(net, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        net.save_parameters(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_artifact(params_path, hp: Hyperparameters, classes: list, model_dir) -> Path:
    """Write the full artifact from a parameters file, via a clean CPU copy with plain BatchNorm.

    Exporting from a fresh copy keeps training state (SyncBatchNorm, GPU contexts) out of the artifact.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    stored_hp = replace(hp, use_pretrained_model=False, model_store="")
    net = build_network(stored_hp)
    net.load_parameters(str(params_path), ctx=mx.cpu())
    save_params(net, model_dir / PARAMS)
    write_atomic(model_dir / HYPERPARAMETERS, json.dumps(stored_hp.to_json(), indent=2).encode())
    write_atomic(model_dir / CLASSES, json.dumps(classes, indent=2).encode())
    export_symbol(net, stored_hp, model_dir)
    return model_dir


def save_random_artifact(model_dir, num_classes=3, backbone="resnet-18", algorithm="fcn", crop_size=64,
                         classes=None, seed=0) -> Path:
    """A complete artifact with freshly initialised weights: for tests of predict/serve that need no training."""
    mx.random.seed(seed)
    hp = parse_hyperparameters({
        "num_classes": num_classes, "num_training_samples": 1, "backbone": backbone, "algorithm": algorithm,
        "crop_size": crop_size, "base_size": crop_size, "use_pretrained_model": False,
    })
    net = build_network(hp)
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / PARAMS
        save_params(net, params)
        return save_artifact(params, hp, classes or default_classes(num_classes), model_dir)


def unpack_model_dir(path, scratch) -> Path:
    """The folder holding the artifact: `path` itself, or `scratch` after extracting a model.tar.gz in it."""
    path = Path(path)
    tarball = path if path.is_file() else path / "model.tar.gz"
    if (path / PARAMS).exists() or not tarball.is_file():
        return path
    Path(scratch).mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(scratch, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ModelError(f"{tarball}: not a readable model.tar.gz ({exc})") from None
    return Path(scratch)


def read_artifact_hyperparameters(model_dir) -> Hyperparameters:
    """The hyperparameters an artifact was trained with (checks the artifact's files are all there)."""
    model_dir = Path(model_dir)
    for name in (PARAMS, HYPERPARAMETERS, CLASSES):
        if not (model_dir / name).is_file():
            raise ModelError(f"{model_dir} is not a seg model: {name} is missing (seg train writes model.params, "
                             "hyperparameters.json and classes.json)")
    try:
        return parse_hyperparameters(json.loads((model_dir / HYPERPARAMETERS).read_text()))
    except (ValueError, HyperparameterError) as exc:
        raise ModelError(f"{model_dir / HYPERPARAMETERS}: {exc}") from None


def load_artifact(model_dir, ctx=None) -> Artifact:
    """Network (hybridized), hyperparameters and classes from a folder written by `save_artifact`."""
    model_dir = Path(model_dir)
    hp = read_artifact_hyperparameters(model_dir)
    classes = load_classes(model_dir / CLASSES)
    if len(classes) != hp.num_classes:
        raise ModelError(f"{model_dir}: classes.json has {len(classes)} classes but num_classes={hp.num_classes}")
    ctx = ctx if isinstance(ctx, list) else [ctx or mx.cpu()]
    net = build_network(hp, ctx=ctx)
    try:
        net.load_parameters(str(model_dir / PARAMS), ctx=ctx)
    except (mx.base.MXNetError, AssertionError) as exc:
        raise ModelError(f"{model_dir / PARAMS} does not match {hp.algorithm}/{hp.backbone}: "
                         f"{str(exc).splitlines()[0]}") from None
    net.hybridize()
    return Artifact(net, hp, classes)


def check_compatible(previous: Hyperparameters, hp: Hyperparameters, where: str) -> None:
    """Incremental training needs the same backbone, algorithm, crop_size and num_classes."""
    diffs = [f"{k}: model {getattr(previous, k)!r} vs job {getattr(hp, k)!r}" for k in MUST_MATCH
             if getattr(previous, k) != getattr(hp, k)]
    if diffs:
        raise ModelError(f"the model in {where} cannot be trained further with these hyperparameters ("
                         + "; ".join(diffs) + "); set them to the model's values")
