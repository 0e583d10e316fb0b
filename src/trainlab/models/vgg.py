"""A small VGG-style network: stages of 3x3 convolutions and max pooling, dense classifier."""

from __future__ import annotations

from typing import Literal

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


class VGGParams(StrictModel):
    """Hyper-parameters of `vgg_small`.

    Args:
        stages: conv widths per stage; each stage ends in a 2x2 max pool.
        dense: widths of the classifier's hidden layers.
        head: `gap` (global average pooling) or `flatten` before the classifier.
    """

    stages: list[list[int]] = Field(default_factory=lambda: [[32, 32], [64, 64], [128, 128]])
    norm: NormSpec = NormSpec(name="batch")
    activation: ActivationSpec = ActivationSpec(name="relu")
    init: InitSpec = InitSpec(scheme="kaiming_normal")
    dropout: float = Field(0.3, ge=0, lt=1)
    dense: list[int] = Field(default_factory=lambda: [128])
    head: Literal["gap", "flatten"] = "gap"

    @field_validator("stages")
    @classmethod
    def _non_empty(cls, value: list[list[int]]) -> list[list[int]]:
        if not value or any(not s or min(s) <= 0 for s in value):
            raise ValueError(f"stages must be non-empty lists of positive widths (got {value})")
        return value


class VGGSmall(nn.Module):
    """`features` (conv stages) → `pool` → `classifier` (dense layers ending in the head).

    The split is what transfer learning needs: reuse `features`, replace `classifier`.
    """

    def __init__(self, input_shape: tuple[int, ...], output_dim: int, p: VGGParams) -> None:
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for stage in p.stages:
            for width in stage:
                norm = make_norm(p.norm, width, spatial=True)
                layers.append(nn.Conv2d(c, width, 3, padding=1, bias=norm is None))
                layers += [m for m in (norm, make_activation(p.activation)) if m is not None]
                c = width
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.pool = GlobalAvgPool() if p.head == "gap" else nn.Flatten()
        n = c if p.head == "gap" else c * h * w
        head: list[nn.Module] = []
        for width in p.dense:
            head += [nn.Linear(n, width), make_activation(p.activation)]
            if p.dropout > 0:
                head.append(nn.Dropout(p.dropout))
            n = width
        head.append(nn.Linear(n, output_dim))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@MODELS.register(
    "vgg_small",
    description="VGG-style conv stages + dense classifier; a transfer-learning backbone",
    params=VGGParams,
)
def build_vgg_small(p: VGGParams, info: TaskInfo) -> nn.Module:
    """A VGG-style network for (C, H, W) images.

    Use it as a simple, deep-ish image model and as the backbone to reuse in transfer
    learning (its `features` / `classifier` split mirrors torchvision's VGG).
    """
    if len(info.input_shape) != 3:
        raise ValueError(
            f"model 'vgg_small' needs image inputs (channels, height, width), "
            f"got {info.input_shape}"
        )
    return initialize(VGGSmall(tuple(info.input_shape), info.output_dim, p), p.init)
