"""FCN / PSP / DeepLabV3 on GluonCV's dilated ResNets, as torch modules that compute what GluonCV computes.

Every module's attribute name and every `nn.Sequential` index mirror the structural parameter names of
GluonCV's networks (`conv1.0.weight`, `layer1.0.downsample.1.running_var`, `head.aspp.concurent.4.gap.1.weight`,
`auxlayer.block.4.bias`) and seg's own heads (seg.engines.mxnet.nets), so the weights' only renaming is BatchNorm's
gamma/beta ↔ weight/bias (seg.engines.torch.weights). Parameter-free layers (ReLU, Dropout, pooling) keep
GluonCV's Sequential indices for the same reason. As in seg.engines.mxnet.nets, every resize is "like" its input
(bilinear, align_corners=True, which is MXNet's BilinearResize2D), so one network serves any input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seg.models.arch import ASPP_RATES, BN_EPSILON, CHANNELS, LAYERS, PSP_BINS, Architecture

#: torch's BatchNorm momentum weighs the new batch; Gluon's (0.9) weighs the running value: 1 - 0.9
BN_MOMENTUM = 0.1
#: the deep ("v1s") stem's width, as GluonCV's resnet50_v1s / resnet101_v1s
STEM_WIDTH = 64


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """Gluon's BatchNorm defaults (epsilon, momentum) in torch's convention."""
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)


def conv_bn_relu(in_channels: int, channels: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    """conv (no bias, "same" padding) → BatchNorm → ReLU at indices 0, 1, 2, as GluonCV's and seg's blocks."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        batch_norm(channels), nn.ReLU(inplace=True))


def resize_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize to `like`'s height and width: MXNet's BilinearResize2D(mode="like")."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


def _edges(length, bins: int, i: int):
    """Start and end of adaptive pooling's cell i of `bins` along `length`: floor(i·n/b) .. ceil((i+1)·n/b).

    Non-negative operands only: the traced integer division is ONNX's Div, which truncates.
    """
    return (i * length) // bins, ((i + 1) * length + bins - 1) // bins


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """`adaptive_avg_pool2d(x, bins)` (MXNet's AdaptiveAvgPooling2D: the same cells); while exporting to ONNX,
    `sliced_avg_pool`, as torch's exporter cannot write adaptive pooling for a dynamic input size."""
    if bins == 1:
        return x.mean(dim=(2, 3), keepdim=True)
    if torch.onnx.is_in_onnx_export():
        return sliced_avg_pool(x, bins)
    return F.adaptive_avg_pool2d(x, bins)


def sliced_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Adaptive average pooling with every cell an explicit slice and mean, edges computed from x's shape: traced,
    these are dynamic Slice/ReduceMean nodes, right at any input size. Rows first, then columns (the same cells,
    so the same values up to rounding)."""
    height, width = x.shape[2], x.shape[3]
    rows = []
    for i in range(bins):
        top, bottom = _edges(height, bins, i)
        rows.append(x[:, :, top:bottom].mean(dim=2, keepdim=True))
    rows = torch.cat(rows, dim=2)
    cells = []
    for j in range(bins):
        left, right = _edges(width, bins, j)
        cells.append(rows[:, :, :, left:right].mean(dim=3, keepdim=True))
    return torch.cat(cells, dim=3)


# ---- backbone: GluonCV's ResNetV1b (resnetv1b.py), dilated -------------------------------------------------

class BasicBlock(nn.Module):
    """GluonCV's BasicBlockV1b: two 3×3 convs; conv1 takes `dilation`, conv2 the stage's `previous_dilation`."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, previous_dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = batch_norm(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=previous_dilation, dilation=previous_dilation,
                               bias=False)
        self.bn2 = batch_norm(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.downsample = downsample  # registered last, as GluonCV assigns it

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        residual = x if self.downsample is None else self.downsample(x)
        out += residual  # in place: no new tensor per block (bn2 and conv2 keep no output for backward)
        return self.relu2(out)


class Bottleneck(nn.Module):
    """GluonCV's BottleneckV1b: 1×1, 3×3 (stride and `dilation` here, as in v1b), 1×1 to 4× the planes."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, previous_dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = batch_norm(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = batch_norm(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = batch_norm(planes * 4)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        out += residual  # in place, as in BasicBlock
        return self.relu3(out)


def _stage(block, inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """GluonCV's ResNetV1b._make_layer: the first block of a dilated stage uses half the stage's dilation
    (1 for dilation 2, 2 for dilation 4) and the stage's dilation as its `previous_dilation`."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                   batch_norm(planes * block.expansion))
    first_dilation = {1: 1, 2: 1, 4: 2}[dilation]
    layers = [block(inplanes, planes, stride, first_dilation, downsample, previous_dilation=dilation)]
    layers += [block(planes * block.expansion, planes, 1, dilation, previous_dilation=dilation)
               for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _stem(stem: str) -> tuple:
    """(conv1, channels out): one 7×7 conv ("v1b"), or GluonCV's deep stem of three 3×3 convs ("v1s")."""
    if stem == "v1b":
        return nn.Conv2d(3, 64, 7, 2, padding=3, bias=False), 64
    conv1 = nn.Sequential(
        nn.Conv2d(3, STEM_WIDTH, 3, 2, padding=1, bias=False), batch_norm(STEM_WIDTH), nn.ReLU(inplace=True),
        nn.Conv2d(STEM_WIDTH, STEM_WIDTH, 3, 1, padding=1, bias=False), batch_norm(STEM_WIDTH), nn.ReLU(inplace=True),
        nn.Conv2d(STEM_WIDTH, 2 * STEM_WIDTH, 3, 1, padding=1, bias=False))
    return conv1, 2 * STEM_WIDTH


class DilatedResNet(nn.Module):
    """GluonCV's ResNetV1b with `dilated=True` (output stride 8), without its classifier.

    forward returns (layer3's output, layer4's output): the auxiliary head reads the first, the head the second.
    """

    def __init__(self, backbone: str, stem: str = "v1s"):
        super().__init__()
        counts, bottleneck = LAYERS[backbone]
        block = Bottleneck if bottleneck else BasicBlock
        self.conv1, inplanes = _stem(stem)
        self.bn1 = batch_norm(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        stages = []
        for planes, blocks, stride, dilation in zip((64, 128, 256, 512), counts, (1, 2, 1, 1), (1, 1, 2, 4)):
            stages.append(_stage(block, inplanes, planes, blocks, stride, dilation))
            inplanes = planes * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x):
        x = self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x))))))
        c3 = self.layer3(x)
        return c3, self.layer4(c3)


# ---- GluonCV's heads (fcn.py, pspnet.py, deeplabv3.py) ------------------------------------------------------

class GluonFCNHead(nn.Module):
    """GluonCV's _FCNHead: 3×3 conv to in/4 channels, BN, ReLU, dropout 0.1, 1×1 classifier (block.0 … block.4);
    the FCN head and every auxiliary head."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        inter = in_channels // 4
        self.block = nn.Sequential(*conv_bn_relu(in_channels, inter, 3), nn.Dropout(0.1),
                                   nn.Conv2d(inter, num_classes, 1))

    def forward(self, x):
        return self.block(x)


class PyramidPooling(nn.Module):
    """GluonCV's _PyramidPooling: average pooling to 1, 2, 3 and 6 bins, a 1×1 conv each, each resized like
    the features (GluonCV resizes to a size fixed at construction) and concatenated after them."""

    def __init__(self, in_channels: int):
        super().__init__()
        for i in range(len(PSP_BINS)):
            setattr(self, f"conv{i + 1}", conv_bn_relu(in_channels, in_channels // 4, 1))

    def forward(self, x):
        branches = (self.conv1, self.conv2, self.conv3, self.conv4)
        return torch.cat([x] + [resize_like(conv(adaptive_avg_pool(x, bins)), x)
                                for bins, conv in zip(PSP_BINS, branches)], dim=1)


class GluonPSPHead(nn.Module):
    """GluonCV's _PSPHead: pyramid pooling on layer4, then a 3×3 conv to 512 channels and the classifier."""

    def __init__(self, num_classes: int, in_channels: int = 2048):
        super().__init__()
        self.psp = PyramidPooling(in_channels)
        self.block = nn.Sequential(*conv_bn_relu(2 * in_channels, 512, 3), nn.Dropout(0.1),
                                   nn.Conv2d(512, num_classes, 1))

    def forward(self, x):
        return self.block(self.psp(x))


class ImagePooling(nn.Module):
    """GluonCV's _AsppPooling: global average → 1×1 conv → BN → ReLU (`gap.0` … `gap.3`), resized like its
    input."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(in_channels, channels, 1))

    def forward(self, x):
        return resize_like(self.gap(x), x)


class ASPP(nn.Module):
    """GluonCV's _ASPP: five concurrent branches (`concurent`, GluonCV's spelling: 1×1, three 3×3 at rates
    12/24/36, image pooling) concatenated, then `project` (1×1 conv, BN, ReLU, dropout 0.5)."""

    def __init__(self, in_channels: int, channels: int = 256):
        super().__init__()
        self.concurent = nn.ModuleList(
            [conv_bn_relu(in_channels, channels, 1)]
            + [conv_bn_relu(in_channels, channels, 3, dilation=rate) for rate in ASPP_RATES]
            + [ImagePooling(in_channels, channels)])
        self.project = nn.Sequential(*conv_bn_relu(len(self.concurent) * channels, channels, 1), nn.Dropout(0.5))

    def forward(self, x):
        return self.project(torch.cat([branch(x) for branch in self.concurent], dim=1))


class GluonDeepLabHead(nn.Module):
    """GluonCV's _DeepLabHead: ASPP on layer4, a 3×3 conv, BN, ReLU, dropout 0.1, the classifier."""

    def __init__(self, num_classes: int, in_channels: int = 2048, channels: int = 256):
        super().__init__()
        self.aspp = ASPP(in_channels, channels)
        self.block = nn.Sequential(*conv_bn_relu(channels, channels, 3), nn.Dropout(0.1),
                                   nn.Conv2d(channels, num_classes, 1))

    def forward(self, x):
        return self.block(self.aspp(x))


# ---- seg's own heads (seg.engines.mxnet.nets: ResNet-18/34, and ResNet-50/101 models with heads == "seg") ---------

class FCNHead(nn.Module):
    """seg's FCN head: conv-BN-ReLU (to in/4 channels unless told) as one block, dropout 0.1, 1×1 classifier."""

    def __init__(self, in_channels: int, num_classes: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or in_channels // 4
        self.block = nn.Sequential(conv_bn_relu(in_channels, inter, 3), nn.Dropout(0.1),
                                   nn.Conv2d(inter, num_classes, 1))

    def forward(self, x):
        return self.block(x)


class PSPHead(nn.Module):
    """seg's PSP head: pooled branches (1, 2, 3, 6 bins) resized like the features, then seg's FCN head."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, in_channels // 4, 1) for _ in PSP_BINS])
        self.classifier = FCNHead(2 * in_channels, num_classes)

    def forward(self, x):
        pooled = [resize_like(branch(adaptive_avg_pool(x, bins)), x) for bins, branch in zip(PSP_BINS, self.branches)]
        return self.classifier(torch.cat([x] + pooled, dim=1))


class ASPPHead(nn.Module):
    """seg's DeepLabV3 head: 1×1 and three atrous branches, image pooling, projection, dropout 0.5, FCN head."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, channels, 1)]
                                      + [conv_bn_relu(in_channels, channels, 3, rate) for rate in ASPP_RATES])
        self.image_pool = conv_bn_relu(in_channels, channels, 1)
        self.project = conv_bn_relu((len(ASPP_RATES) + 2) * channels, channels, 1)
        self.dropout = nn.Dropout(0.5)
        self.classifier = FCNHead(channels, num_classes, inter_channels=channels)

    def forward(self, x):
        outs = [branch(x) for branch in self.branches]
        outs.append(resize_like(self.image_pool(adaptive_avg_pool(x, 1)), x))
        return self.classifier(self.dropout(self.project(torch.cat(outs, dim=1))))


SEG_HEADS = {"fcn": FCNHead, "psp": PSPHead, "deeplab": ASPPHead}


def _gluon_head(algorithm: str, num_classes: int, in_channels: int) -> nn.Module:
    if algorithm == "fcn":
        return GluonFCNHead(in_channels, num_classes)
    if algorithm == "psp":
        return GluonPSPHead(num_classes, in_channels)
    return GluonDeepLabHead(num_classes, in_channels)


class SegNet(nn.Module):
    """Dilated backbone → head → logits resized to the input's height and width (any input size).

    The backbone's parts are this module's own attributes (conv1 … layer4), as GluonCV's SegBaseModel has them,
    so parameter names carry no "backbone." prefix. `aux_output` (settable): also return the auxiliary head's
    logits, resized alike, as (logits, aux_logits); without it the auxiliary head, kept for the built-in's
    parameter structure, is not run.
    """

    def __init__(self, backbone: DilatedResNet, head: nn.Module, auxlayer: nn.Module | None = None,
                 aux_output: bool = False):
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(backbone, name))
        self.head = head
        self.auxlayer = auxlayer
        self.aux_output = aux_output and auxlayer is not None

    def features(self, x):
        """(layer3's output, layer4's output)."""
        x = self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x))))))
        c3 = self.layer3(x)
        return c3, self.layer4(c3)

    def forward(self, x):
        c3, c4 = self.features(x)
        out = resize_like(self.head(c4), x)
        if self.aux_output:
            return out, resize_like(self.auxlayer(c3), x)
        return out


def initialize(module: nn.Module) -> nn.Module:
    """seg's MXNet initialisation (seg.engines.mxnet.nets): convolutions Xavier gaussian, fan-in, magnitude 2
    (He normal), biases 0; BatchNorm gamma 1, beta 0 with running mean 0 and variance 1."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
    return module


def build(arch: Architecture, aux_output: bool = False) -> SegNet:
    """The network of `arch`, initialised as seg's MXNet engine initialises a network without pretrained weights.

    `aux_output`: also return the auxiliary head's logits (training with the auxiliary loss; `arch.aux` only).
    """
    backbone = DilatedResNet(arch.backbone, arch.stem)
    channels = CHANNELS[arch.backbone]
    if arch.heads == "seg":
        net = SegNet(backbone, SEG_HEADS[arch.algorithm](channels[1], arch.num_classes))
    else:
        aux = GluonFCNHead(channels[0], arch.num_classes) if arch.aux else None
        net = SegNet(backbone, _gluon_head(arch.algorithm, arch.num_classes, channels[1]), aux, aux_output)
    return initialize(net)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """For inference only: each BatchNorm that directly follows a convolution folded into that convolution's
    weight and bias (in place; eval mode), so a forward pass runs one operation where it ran two. The pairs are
    the ones the forwards above apply back to back: adjacent children of a Sequential, and convN → bnN in the
    ResNet blocks and the stem (whose conv1 may be a Sequential ending in a convolution)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second in zip(names, names[1:]):
                conv, bn = module._modules[first], module._modules[second]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[first], module._modules[second] = fuse_conv_bn_eval(conv, bn), nn.Identity()
        for i in (1, 2, 3):
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            owner, name = (conv, str(len(conv) - 1)) if isinstance(conv, nn.Sequential) else (module, f"conv{i}")
            last = owner._modules.get(name)
            if isinstance(last, nn.Conv2d):
                owner._modules[name] = fuse_conv_bn_eval(last, bn)
                setattr(module, f"bn{i}", nn.Identity())
    return model
