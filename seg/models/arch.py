"""What a model is, independent of the engine that runs it: algorithm, backbone, classes, stem, head layout.

Both engines (seg.engines.torch, seg.engines.mxnet) build the network of an `Architecture` with GluonCV's
parameter names, so one parameter file (the built-in's `model_algo-1`) loads into either. No engine imported here.
"""
from __future__ import annotations

from dataclasses import dataclass

from seg.config import Hyperparameters

#: backbone → GluonCV model-store name of its ImageNet weights
STORE_NAMES = {"resnet-18": "resnet18_v1b", "resnet-34": "resnet34_v1b",
               "resnet-50": "resnet50_v1s", "resnet-101": "resnet101_v1s"}
#: backbone → channels of layer3's and layer4's outputs
CHANNELS = {"resnet-18": (256, 512), "resnet-34": (256, 512), "resnet-50": (1024, 2048), "resnet-101": (1024, 2048)}
#: backbone → blocks per stage, and whether the blocks are bottlenecks (ResNet-50/101) or basic (18/34)
LAYERS = {"resnet-18": ((2, 2, 2, 2), False), "resnet-34": ((3, 4, 6, 3), False),
          "resnet-50": ((3, 4, 6, 3), True), "resnet-101": ((3, 4, 23, 3), True)}
#: backbones that also exist with GluonCV's 7×7 stem ("v1b") besides the deep 3×3 stem ("v1s")
V1B_STEM_BACKBONES = ("resnet-50", "resnet-101")
PSP_BINS = (1, 2, 3, 6)
ASPP_RATES = (12, 24, 36)
BN_EPSILON = 1e-5  # Gluon's BatchNorm default, which GluonCV's networks keep


@dataclass(frozen=True)
class Architecture:
    """What a parameter file holds: enough to build the network it loads into strictly."""

    algorithm: str
    backbone: str
    num_classes: int
    stem: str = "v1s"  # "v1s": GluonCV's deep 3×3 stem (resnet*_v1s); "v1b": one 7×7 conv (resnet*_v1b)
    heads: str = "gluoncv"  # "gluoncv": GluonCV's FCN/PSPNet/DeepLabV3 structure; "seg": seg's own heads
    aux: bool = True  # GluonCV's auxiliary FCN head `auxlayer` on layer3 (heads == "gluoncv" only)

    @property
    def builtin_compatible(self) -> bool:
        """True when the built-in algorithm (GluonCV's classes) can load these parameters."""
        return self.heads == "gluoncv"

    def describe(self) -> str:
        extras = [f"{self.stem} stem", f"{self.heads} heads"] + (["aux head"] if self.aux else [])
        return f"{self.algorithm}/{self.backbone} ({', '.join(extras)}), {self.num_classes} classes"


def architecture_for(hp: Hyperparameters) -> Architecture:
    """What `seg train` builds for `hp`: GluonCV's structure for the built-in's backbones, seg's heads otherwise."""
    if hp.backbone in V1B_STEM_BACKBONES:
        return Architecture(hp.algorithm, hp.backbone, hp.num_classes)
    return Architecture(hp.algorithm, hp.backbone, hp.num_classes, stem="v1b", heads="seg", aux=False)


def _conv(out: dict, name: str, channels: int, in_channels: int, kernel: int, bias: bool = False) -> None:
    out[f"{name}.weight"] = (channels, in_channels, kernel, kernel)
    if bias:
        out[f"{name}.bias"] = (channels,)


def _bn(out: dict, name: str, channels: int) -> None:
    for suffix in ("gamma", "beta", "running_mean", "running_var"):
        out[f"{name}.{suffix}"] = (channels,)


def _backbone_shapes(out: dict, arch: Architecture) -> None:
    if arch.stem == "v1s":  # deep stem: 3×3 (64) → 3×3 (64) → 3×3 (128), as resnet*_v1s with stem_width 64
        _conv(out, "conv1.0", 64, 3, 3), _bn(out, "conv1.1", 64)
        _conv(out, "conv1.3", 64, 64, 3), _bn(out, "conv1.4", 64)
        _conv(out, "conv1.6", 128, 64, 3)
        inplanes = 128
    else:
        _conv(out, "conv1", 64, 3, 7)
        inplanes = 64
    _bn(out, "bn1", inplanes)
    blocks, bottleneck = LAYERS[arch.backbone]
    expansion = 4 if bottleneck else 1
    for stage, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for i in range(count):
            name = f"layer{stage}.{i}"
            if bottleneck:
                _conv(out, f"{name}.conv1", planes, inplanes, 1), _bn(out, f"{name}.bn1", planes)
                _conv(out, f"{name}.conv2", planes, planes, 3), _bn(out, f"{name}.bn2", planes)
                _conv(out, f"{name}.conv3", planes * 4, planes, 1), _bn(out, f"{name}.bn3", planes * 4)
            else:
                _conv(out, f"{name}.conv1", planes, inplanes, 3), _bn(out, f"{name}.bn1", planes)
                _conv(out, f"{name}.conv2", planes, planes, 3), _bn(out, f"{name}.bn2", planes)
            if i == 0 and (stage > 1 or inplanes != planes * expansion):
                _conv(out, f"{name}.downsample.0", planes * expansion, inplanes, 1)
                _bn(out, f"{name}.downsample.1", planes * expansion)
            inplanes = planes * expansion


def _fcn_head(out: dict, name: str, in_channels: int, num_classes: int, inter: int, nested: bool) -> None:
    """GluonCV's _FCNHead (block.0 conv, .1 BN, .4 classifier) or seg's (block.0 = conv+BN, .2 classifier)."""
    if nested:
        _conv(out, f"{name}.block.0.0", inter, in_channels, 3), _bn(out, f"{name}.block.0.1", inter)
        _conv(out, f"{name}.block.2", num_classes, inter, 1, bias=True)
    else:
        _conv(out, f"{name}.block.0", inter, in_channels, 3), _bn(out, f"{name}.block.1", inter)
        _conv(out, f"{name}.block.4", num_classes, inter, 1, bias=True)


def _conv_bn(out: dict, name: str, channels: int, in_channels: int, kernel: int) -> None:
    _conv(out, f"{name}.0", channels, in_channels, kernel), _bn(out, f"{name}.1", channels)


def _head_shapes(out: dict, arch: Architecture) -> None:
    c3, c4 = CHANNELS[arch.backbone]
    n = arch.num_classes
    if arch.heads == "seg":
        if arch.algorithm == "fcn":
            _fcn_head(out, "head", c4, n, c4 // 4, nested=True)
        elif arch.algorithm == "psp":
            for i in range(len(PSP_BINS)):
                _conv_bn(out, f"head.branches.{i}", c4 // 4, c4, 1)
            _fcn_head(out, "head.classifier", 2 * c4, n, 2 * c4 // 4, nested=True)
        else:
            _conv_bn(out, "head.branches.0", 256, c4, 1)
            for i in range(1, 1 + len(ASPP_RATES)):
                _conv_bn(out, f"head.branches.{i}", 256, c4, 3)
            _conv_bn(out, "head.image_pool", 256, c4, 1)
            _conv_bn(out, "head.project", 256, 5 * 256, 1)
            _fcn_head(out, "head.classifier", 256, n, 256, nested=True)
        return
    if arch.algorithm == "fcn":
        _fcn_head(out, "head", c4, n, c4 // 4, nested=False)
    elif arch.algorithm == "psp":
        for i in range(1, 1 + len(PSP_BINS)):
            _conv_bn(out, f"head.psp.conv{i}", c4 // 4, c4, 1)
        _fcn_head(out, "head", 2 * c4, n, 512, nested=False)
    else:
        _conv_bn(out, "head.aspp.concurent.0", 256, c4, 1)
        for i in range(1, 1 + len(ASPP_RATES)):
            _conv_bn(out, f"head.aspp.concurent.{i}", 256, c4, 3)
        _conv(out, "head.aspp.concurent.4.gap.1", 256, c4, 1), _bn(out, "head.aspp.concurent.4.gap.2", 256)
        _conv_bn(out, "head.aspp.project", 256, 5 * 256, 1)
        _fcn_head(out, "head", 256, n, 256, nested=False)
    if arch.aux:
        _fcn_head(out, "auxlayer", c3, n, c3 // 4, nested=False)


def parameter_shapes(arch: Architecture) -> dict:
    """GluonCV's structural parameter name → shape for `arch`, in registration order: what a parameter file of
    this architecture holds (both engines' networks carry exactly these; tests compare)."""
    out: dict = {}
    _backbone_shapes(out, arch)
    _head_shapes(out, arch)
    return out
