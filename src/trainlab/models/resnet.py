"""CIFAR-style ResNet (He et al. 2016, §4.2): 6n+2 layers in three stages of basic blocks."""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from trainlab.models.activations import ActivationSpec, make_activation
from trainlab.models.init import InitSpec, initialize
from trainlab.models.layers import GlobalAvgPool
from trainlab.models.norms import NormSpec, make_norm
from trainlab.models.registry import MODELS
from trainlab.params import StrictModel
from trainlab.tasks import TaskInfo


class ResNetParams(StrictModel):
    """Hyper-parameters of `resnet`.

    Args:
        depth: 6n+2 layers — 20, 32, 44, 56 or 110 as in the paper.
        width: multiplier of the stage widths 16, 32, 64 (2 → a wide ResNet).
        dropout: before the classifier head.
    """

    depth: int = 20
    width: float = Field(1.0, gt=0)
    norm: NormSpec = NormSpec(name="batch")
    activation: ActivationSpec = ActivationSpec(name="relu")
    init: InitSpec = InitSpec(scheme="kaiming_normal", mode="fan_out")
    dropout: float = Field(0.0, ge=0, lt=1)

    @field_validator("depth")
    @classmethod
    def _six_n_plus_two(cls, value: int) -> int:
        if value < 8 or (value - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110), got {value}")
        return value


class BasicBlock(nn.Module):
    """conv3x3 → norm → act → conv3x3 → norm, plus the (projected) input, → act."""

    def __init__(self, c_in: int, c_out: int, stride: int, p: ResNetParams) -> None:
        super().__init__()
        with_bias = p.norm.name == "none"
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=with_bias)
        self.norm1 = make_norm(p.norm, c_out, spatial=True) or nn.Identity()
        self.act1 = make_activation(p.activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=with_bias)
        self.norm2 = make_norm(p.norm, c_out, spatial=True) or nn.Identity()
        self.act2 = make_activation(p.activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            # projection shortcut (option B): a 1x1 conv where the shape changes
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=with_bias),
                make_norm(p.norm, c_out, spatial=True) or nn.Identity(),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """stem → layer1..3 (stride 1, 2, 2) → global average pool → head."""

    def __init__(self, c_in: int, output_dim: int, p: ResNetParams) -> None:
        super().__init__()
        n = (p.depth - 2) // 6
        widths = [max(1, round(c * p.width)) for c in (16, 32, 64)]
        self.stem = nn.Sequential(
            nn.Conv2d(c_in, widths[0], 3, 1, 1, bias=p.norm.name == "none"),
            make_norm(p.norm, widths[0], spatial=True) or nn.Identity(),
            make_activation(p.activation),
        )
        stages, prev = [], widths[0]
        for i, c in enumerate(widths):
            blocks = [BasicBlock(prev, c, 1 if i == 0 else 2, p)]
            blocks += [BasicBlock(c, c, 1, p) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            prev = c
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = GlobalAvgPool()
        self.dropout = nn.Dropout(p.dropout) if p.dropout > 0 else nn.Identity()
        self.head = nn.Linear(prev, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.head(self.dropout(self.pool(x)))


@MODELS.register(
    "resnet",
    description="CIFAR-style ResNet-20/32/56 (depth 6n+2, width multiplier) for small images",
    params=ResNetParams,
)
def build_resnet(p: ResNetParams, info: TaskInfo) -> nn.Module:
    """A ResNet for (C, H, W) images.

    Use it when a plain CNN stops improving with depth: residual connections keep
    gradients flowing through 20-110 layers. ResNet-20 has 0.27 M parameters.
    """
    if len(info.input_shape) != 3:
        raise ValueError(
            f"model 'resnet' needs image inputs (channels, height, width), got {info.input_shape}"
        )
    model = ResNet(info.input_shape[0], info.output_dim, p)
    initialize(model, p.init)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model
