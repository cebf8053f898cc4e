"""FCN / PSP / DeepLabV3 heads on GluonCV's dilated ResNets.

ResNet-50/101 networks carry exactly the parameter structure of GluonCV's `FCN`, `PSPNet` and `DeepLabV3`
(aux=True), the classes SageMaker's built-in algorithm is built on, so a parameter file loads strictly either
way; their forward differs: every resize is "like" its input, so one hybridized graph serves any size.
ResNet-18/34 (extensions) keep seg's own smaller heads, as do ResNet-50/101 artifacts written before
(`Architecture.heads == "seg"`, told apart by parameter names when loading).
"""
from __future__ import annotations

import warnings
from typing import Optional

import mxnet as mx
import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
from gluoncv.model_zoo.deeplabv3 import _DeepLabHead
from gluoncv.model_zoo.fcn import _FCNHead
from gluoncv.model_zoo.pspnet import _PSPHead
from gluoncv.model_zoo.resnetv1b import (
    resnet18_v1b,
    resnet34_v1b,
    resnet50_v1b,
    resnet50_v1s,
    resnet101_v1b,
    resnet101_v1s,
)
from mxnet.gluon import nn

from seg.config import Hyperparameters
from seg.models.arch import CHANNELS, STORE_NAMES, Architecture, architecture_for
from seg.errors import PretrainedWeightsError

#: backbone → GluonCV constructor (names and channels: seg.models.arch)
CONSTRUCTORS = {"resnet-18": resnet18_v1b, "resnet-34": resnet34_v1b, "resnet-50": resnet50_v1s,
                "resnet-101": resnet101_v1s}
#: GluonCV's other ResNet-50/101 stem: one 7×7 conv ("v1b") instead of three 3×3 ("v1s", deep stem).
V1B_STEMS = {"resnet-50": resnet50_v1b, "resnet-101": resnet101_v1b}


def mxnet_reason(exc) -> str:
    """MXNet's reason without its C++ traceback (the last line: "MXNetError: Check failed: ...")."""
    lines = str(exc).strip().splitlines()
    return lines[-1].replace("MXNetError: ", "") if lines else type(exc).__name__


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


class GluonPSPHead(_PSPHead):
    """GluonCV's PSP head (same parameters); the pooled branches are resized like the features."""

    def hybrid_forward(self, F, x):
        branches = (self.psp.conv1, self.psp.conv2, self.psp.conv3, self.psp.conv4)
        pooled = [F.contrib.BilinearResize2D(conv(F.contrib.AdaptiveAvgPooling2D(x, output_size=bins)), x, mode="like")
                  for bins, conv in zip(PSPHead.BINS, branches)]
        return self.block(F.concat(x, *pooled, dim=1))


class GluonDeepLabHead(_DeepLabHead):
    """GluonCV's DeepLabV3 head (same parameters); the image-pooling branch is resized like the features."""

    def hybrid_forward(self, F, x):
        branches = self.aspp.concurent
        outs = [branches[i](x) for i in range(4)]
        outs.append(F.contrib.BilinearResize2D(branches[4].gap(x), x, mode="like"))
        return self.block(self.aspp.project(F.concat(*outs, dim=1)))


def _gluon_head(algorithm, nclass, norm_layer, norm_kwargs):
    if algorithm == "fcn":
        return _FCNHead(2048, nclass, norm_layer=norm_layer, norm_kwargs=norm_kwargs)
    head = GluonPSPHead if algorithm == "psp" else GluonDeepLabHead
    return head(nclass, norm_layer=norm_layer, norm_kwargs=norm_kwargs)


class SegNet(nn.HybridBlock):
    """Dilated backbone → head → logits resized to the input's height and width (any input size).

    With `aux_output` (training) it also returns the auxiliary head's logits, resized alike.
    """

    def __init__(self, backbone, head, auxlayer=None, aux_output=False):
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(backbone, name))
        self.head = head
        if auxlayer is not None:
            self.auxlayer = auxlayer
        self._aux_output = aux_output and auxlayer is not None

    def forward(self, x, *args):
        if not hasattr(self, "auxlayer") or self._aux_output:
            return super().forward(x, *args)
        with warnings.catch_warnings():  # inference leaves the auxiliary head out of the graph, on purpose
            warnings.filterwarnings("ignore", message="Parameter .* is not used by any computation")
            return super().forward(x, *args)

    def hybrid_forward(self, F, x):
        y = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c3 = self.layer3(self.layer2(self.layer1(y)))
        out = F.contrib.BilinearResize2D(self.head(self.layer4(c3)), x, mode="like")
        if self._aux_output:
            return out, F.contrib.BilinearResize2D(self.auxlayer(c3), x, mode="like")
        return out


def _init():
    return mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)


def _backbone(arch: Architecture, norm_layer, norm_kwargs):
    make_backbone = CONSTRUCTORS[arch.backbone]
    if arch.stem == "v1b" and arch.backbone in V1B_STEMS:
        make_backbone = V1B_STEMS[arch.backbone]
    return make_backbone(pretrained=False, dilated=True, norm_layer=norm_layer, norm_kwargs=norm_kwargs)


def assemble(arch: Architecture, norm_layer=None, norm_kwargs=None, aux_output=False, backbone=None) -> SegNet:
    """The network of `arch`, uninitialised unless `backbone` already is."""
    norm_layer = norm_layer or nn.BatchNorm
    norm_kwargs = norm_kwargs or {}
    backbone = backbone or _backbone(arch, norm_layer, norm_kwargs)
    if arch.heads == "seg":
        channels = CHANNELS[arch.backbone][1]
        return SegNet(backbone, HEADS[arch.algorithm](channels, arch.num_classes, norm_layer, norm_kwargs))
    head = _gluon_head(arch.algorithm, arch.num_classes, norm_layer, norm_kwargs)
    aux = _FCNHead(1024, arch.num_classes, norm_layer=norm_layer, norm_kwargs=norm_kwargs) if arch.aux else None
    return SegNet(backbone, head, aux, aux_output)


def build_network(hp: Hyperparameters, ctx=None, pretrained_path=None, norm_layer=None, norm_kwargs=None,
                  arch: Optional[Architecture] = None, aux_output: bool = False) -> SegNet:
    """An initialised network for `hp` (of `arch` when given); backbone weights from `pretrained_path` when given.

    `aux_output`: also return the auxiliary head's logits (training with the auxiliary loss).
    """
    ctx = ctx or [mx.cpu()]
    arch = arch or architecture_for(hp)
    backbone = _backbone(arch, norm_layer or nn.BatchNorm, norm_kwargs or {})
    if pretrained_path:
        try:
            backbone.load_parameters(str(pretrained_path), ctx=ctx)
        except (mx.base.MXNetError, AssertionError, ValueError) as exc:
            raise PretrainedWeightsError(
                f"{pretrained_path} does not fit backbone {arch.backbone} ({STORE_NAMES[arch.backbone]}): "
                f"{mxnet_reason(exc)}"
            ) from None
    else:
        backbone.initialize(_init(), ctx=ctx)
    net = assemble(arch, norm_layer, norm_kwargs, aux_output, backbone)
    for name in ("head", "auxlayer"):
        if hasattr(net, name):
            getattr(net, name).initialize(_init(), ctx=ctx)
            # fresh decoder learns faster than the backbone (GluonCV)
            getattr(net, name).collect_params().setattr("lr_mult", 10)
    if hasattr(net, "auxlayer") and not aux_output:  # kept for the built-in's structure, not trained
        net.auxlayer.collect_params().setattr("grad_req", "null")
    if not pretrained_path:  # GluonCV's convs infer in_channels: one small forward materialises them
        net(mx.nd.zeros((1, 3, 32, 32), ctx=ctx[0]))
    return net
