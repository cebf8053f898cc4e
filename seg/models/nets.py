"""FCN / PSP / DeepLabV3 heads on GluonCV's dilated ResNets."""
from __future__ import annotations

import mxnet as mx
from gluoncv.model_zoo.resnetv1b import resnet18_v1b, resnet34_v1b, resnet50_v1s, resnet101_v1s
from mxnet.gluon import nn

from seg.config import Hyperparameters
from seg.errors import PretrainedWeightsError

# backbone → (GluonCV constructor, GluonCV model-store name, channels of layer3 output, of layer4 output)
BACKBONES = {
    "resnet-18": (resnet18_v1b, "resnet18_v1b", 256, 512),
    "resnet-34": (resnet34_v1b, "resnet34_v1b", 256, 512),
    "resnet-50": (resnet50_v1s, "resnet50_v1s", 1024, 2048),
    "resnet-101": (resnet101_v1s, "resnet101_v1s", 1024, 2048),
}


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
