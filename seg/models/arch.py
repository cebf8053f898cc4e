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
