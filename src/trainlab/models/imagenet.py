"""ImageNet-layout ResNet-18/34/50 and VGG-16 whose tensor names match torchvision's.

Why: transfer learning from ImageNet (seed 003 §4.5) starts from published weights, and
the weights people have on disk are torchvision's `resnet50-*.pth` / `vgg16-*.pth`. These
modules are written from the papers, but lay their parameters out under exactly the names
and shapes torchvision's checkpoints use (`conv1.weight`, `layer1.0.downsample.0.weight`,
`fc.weight`; `features.0.weight` … `features.28.bias`, `classifier.0/3/6`), so such a file
loads with `load_state_dict(strict=True)` (and `model.init_from.weights`) without
torchvision, which does not import beside this torch build.

Architectures:
- ResNet (He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition",
  Table 1): a 7x7/2 conv and a 3x3/2 max pool, four stages of basic (18, 34 layers) or
  bottleneck (50) blocks at 64/128/256/512 channels (x4 for bottlenecks), global average
  pooling and one linear layer. Downsampling shortcuts are 1x1 projections with batch
  norm (option B). As in torchvision ("v1.5"), a bottleneck block strides in its 3x3
  conv, not its first 1x1 one.
- VGG-16 (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks for Large-Scale
  Image Recognition", configuration D): 13 3x3 convs in five stages of 64/128/256/512/512
  channels, each stage ending in a 2x2 max pool, then an adaptive 7x7 average pool (which
  lets any input of at least 32 px through) and fully connected 4096-4096-classes layers
  with dropout 0.5.

Inputs: the layout is ImageNet's, 3x224x224. Other images are adapted inside the model,
with no extra parameters (so the tensor names stay torchvision's): `resize` resamples
(bilinear) to a square size before the first conv; a 1-channel image is repeated to 3
channels (`channel_adapter: repeat`) so pretrained first-layer weights apply, or the first
conv takes the task's channels (`channel_adapter: conv`: that conv then cannot load
pretrained weights and trains from its initialisation); `normalize: imagenet` standardises
[0, 1] pixels with the ImageNet mean and standard deviation the pretrained weights were
trained on. The head (`fc` / `classifier.6`) is sized for the task's classes.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trainlab.models.registry import MODELS
from trainlab.params import StrictModel
from trainlab.tasks import TaskInfo

#: The smallest side the ImageNet layout takes: ResNet and VGG both halve the image five
#: times (32x), so a smaller image is reduced to nothing.
MIN_SIZE = 32
#: Per-channel mean and standard deviation of ImageNet's training images (RGB, [0, 1]),
#: the normalisation torchvision's pretrained weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: VGG-16, configuration D: the conv widths of its five stages (each ends in a 2x2 max pool).
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class ImageNetInputParams(StrictModel):
    """How images that are not 3x224x224 ImageNet photos are fed to the network.

    Args:
        resize: resample every image (bilinear) to resize x resize before the first
            conv; None runs at the input size (at least 32x32). 64 or more suits
            32-px images (CIFAR, MNIST) with pretrained weights; 224 is ImageNet's size,
            and slow on a CPU.
        channel_adapter: for a task whose images do not have 3 channels. `repeat` copies
            a single channel to 3, so pretrained `conv1` weights apply; `conv` makes the
            first conv take the task's channels — it then cannot load pretrained weights
            (leave it out of `init_from`, e.g. `exclude: [conv1.*]`) and trains from its
            initialisation.
        normalize: `imagenet` subtracts the ImageNet channel means and divides by their
            standard deviations (pixels in [0, 1], after the channel adapter), as the
            pretrained weights expect; `none` leaves the inputs as they are.
    """

    resize: int | None = Field(None, ge=MIN_SIZE)
    channel_adapter: Literal["repeat", "conv"] = "repeat"
    normalize: Literal["none", "imagenet"] = "none"


class ImageNetResNetParams(ImageNetInputParams):
    """Hyper-parameters of `resnet18`, `resnet34` and `resnet50`.

    Args:
        zero_init_residual: start the last batch norm of every block at zero, so each
            residual block begins as the identity (Goyal et al. 2017, "Accurate, Large
            Minibatch SGD": helps large-batch training from scratch).
    """

    zero_init_residual: bool = False


class VGG16Params(ImageNetInputParams):
    """Hyper-parameters of `vgg16`.

    Args:
        dropout: after each of the two hidden fully connected layers (0.5 in the paper).
    """

    dropout: float = Field(0.5, ge=0, lt=1)


class InputAdapter:
    """The parameter-free input steps every ImageNet-layout model runs first.

    A mixin rather than a submodule: a submodule would add a name prefix, and the
    tensor names must stay torchvision's.
    """

    resize: int | None = None
    repeat_channels: bool = False
    normalize: str = "none"

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """Resize, repeat a single channel to 3, normalise — as configured."""
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            size = (self.resize, self.resize)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if self.repeat_channels:
            x = x.repeat(1, 3, 1, 1)
        if self.normalize == "imagenet":
            mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device)
            std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device)
            x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        return x


def plan_input(name: str, info: TaskInfo, p: ImageNetInputParams) -> tuple[int, bool]:
    """(channels of the first conv, whether to repeat one channel to 3) for this task.

    Raises ValueError (a RecipeError once built from a recipe) for non-image inputs,
    channel counts the adapter cannot serve and images too small for the 32x reduction.
    """
    if len(info.input_shape) != 3:
        raise ValueError(
            f"model '{name}' needs image inputs (channels, height, width), got {info.input_shape}"
        )
    c, h, w = info.input_shape
    if p.resize is None and min(h, w) < MIN_SIZE:
        raise ValueError(
            f"model '{name}' needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels (it "
            f"halves them five times), but this task's are {h}x{w}; set model.resize: 64 "
            "to resample them inside the model"
        )
    if c == 3 or p.channel_adapter == "conv":
        return c, False
    if c == 1:
        return 3, True
    raise ValueError(
        f"model '{name}': channel_adapter: repeat turns 1-channel images into 3, but this "
        f"task's have {c} channels; set model.channel_adapter: conv (the first conv then "
        "takes them, and cannot load pretrained weights)"
    )


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> tuple[nn.Module, ...]:
    """A bias-free conv (its bias would be cancelled by the batch norm) and its norm."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
    return conv, nn.BatchNorm2d(c_out)


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """He et al.'s option-B shortcut where the shape changes: 1x1 conv (strided) + BN."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(*_conv_bn(c_in, c_out, 1, stride))


class BasicBlock(nn.Module):
    """ResNet-18/34 block: 3x3 conv → BN → ReLU → 3x3 conv → BN, + shortcut, → ReLU."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(c_in, planes, 3, stride)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3)
        self.relu = nn.ReLU()
        self.downsample = _projection(c_in, planes, stride)

    def last_norm(self) -> nn.BatchNorm2d:
        """The norm ending the residual branch (`zero_init_residual` zeroes it)."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """ResNet-50 block: 1x1 reduce → 3x3 (strided, v1.5) → 1x1 expand (x4), + shortcut."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(c_in, planes, 1)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3, stride)
        self.conv3, self.bn3 = _conv_bn(planes, planes * self.expansion, 1)
        self.relu = nn.ReLU()
        self.downsample = _projection(c_in, planes * self.expansion, stride)

    def last_norm(self) -> nn.BatchNorm2d:
        """The norm ending the residual branch (`zero_init_residual` zeroes it)."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ImageNetResNet(InputAdapter, nn.Module):
    """conv1 (7x7/2) → bn1 → ReLU → max pool (3x3/2) → layer1..4 → avgpool → fc."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: tuple[int, ...],
        c_in: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(c_in, 64, 7, 2)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        prev = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
            stride = 1 if i == 0 else 2
            stage = [block(prev, planes, stride)]
            prev = planes * block.expansion
            stage += [block(prev, planes, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.adapt(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class VGG16(InputAdapter, nn.Module):
    """`features` (13 convs + ReLU, 5 max pools) → `avgpool` (7x7) → `classifier`."""

    def __init__(self, c_in: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for stage in VGG16_STAGES:
            for width in stage:
                layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU()]
                c_in = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(self.adapt(x)))
        return self.classifier(torch.flatten(x, 1))


def _configure_input(model: InputAdapter, repeat: bool, p: ImageNetInputParams) -> None:
    model.resize, model.repeat_channels, model.normalize = p.resize, repeat, p.normalize


def _init_resnet(model: ImageNetResNet, zero_init_residual: bool) -> None:
    """He et al. 2015 (Kaiming) normal, fan-out, for the convs; BN at weight 1, bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, BasicBlock | Bottleneck):
                nn.init.zeros_(m.last_norm().weight)


def _build_resnet(
    name: str,
    block: type[BasicBlock | Bottleneck],
    blocks: tuple[int, ...],
    p: ImageNetResNetParams,
    info: TaskInfo,
) -> nn.Module:
    c_in, repeat = plan_input(name, info, p)
    model = ImageNetResNet(block, blocks, c_in, info.output_dim)
    _configure_input(model, repeat, p)
    _init_resnet(model, p.zero_init_residual)
    return model


_RESNET_DOC = "ImageNet ResNet-{} (He et al. 2016), torchvision's tensor names: {}"


@MODELS.register(
    "resnet18",
    description=_RESNET_DOC.format(18, "11.7 M parameters at 1000 classes"),
    params=ImageNetResNetParams,
    head="fc",
)
def build_resnet18(p: ImageNetResNetParams, info: TaskInfo) -> nn.Module:
    """ResNet-18: basic blocks, 2-2-2-2 per stage; loads torchvision's resnet18 weights."""
    return _build_resnet("resnet18", BasicBlock, (2, 2, 2, 2), p, info)


@MODELS.register(
    "resnet34",
    description=_RESNET_DOC.format(34, "21.8 M parameters at 1000 classes"),
    params=ImageNetResNetParams,
    head="fc",
)
def build_resnet34(p: ImageNetResNetParams, info: TaskInfo) -> nn.Module:
    """ResNet-34: basic blocks, 3-4-6-3 per stage; loads torchvision's resnet34 weights."""
    return _build_resnet("resnet34", BasicBlock, (3, 4, 6, 3), p, info)


@MODELS.register(
    "resnet50",
    description=_RESNET_DOC.format(50, "bottlenecks, 25.6 M parameters at 1000 classes"),
    params=ImageNetResNetParams,
    head="fc",
)
def build_resnet50(p: ImageNetResNetParams, info: TaskInfo) -> nn.Module:
    """ResNet-50 (v1.5): bottleneck blocks, 3-4-6-3 per stage; loads torchvision's
    resnet50 weights (IMAGENET1K_V1 or V2 — they share the layout)."""
    return _build_resnet("resnet50", Bottleneck, (3, 4, 6, 3), p, info)


@MODELS.register(
    "vgg16",
    description="ImageNet VGG-16 (Simonyan & Zisserman 2014, config D), torchvision's "
    "tensor names: 138 M parameters at 1000 classes",
    params=VGG16Params,
    head="classifier.6",
)
def build_vgg16(p: VGG16Params, info: TaskInfo) -> nn.Module:
    """VGG-16: loads torchvision's vgg16 weights (not vgg16_bn, which adds norms).

    Initialised as torchvision does: Kaiming-normal (fan-out) convs, normal(0, 0.01)
    linear layers, zero biases.
    """
    c_in, repeat = plan_input("vgg16", info, p)
    model = VGG16(c_in, info.output_dim, p.dropout)
    _configure_input(model, repeat, p)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.zeros_(m.bias)
    return model
