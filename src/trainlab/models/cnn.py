"""Convolutional network: conv blocks (conv → norm → activation → pool → dropout), dense head."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from torch import nn

from trainlab.config.base import StrictModel
from trainlab.models.activations import ACTIVATIONS, make_activation
from trainlab.models.init import check_initializer, initialize
from trainlab.models.registry import MODELS
from trainlab.tasks import TaskInfo


class CNNParams(StrictModel):
    """Hyper-parameters of `cnn`."""

    channels: list[int] = Field(default_factory=lambda: [32, 64])
    kernel_size: int = Field(3, gt=0)
    padding: int | Literal["same"] = "same"
    groups: int = Field(1, gt=0)
    pool: Literal["max", "avg", "none"] = "max"
    norm: Literal["none", "batch"] = "batch"
    activation: str = "relu"
    init: str = "torch"
    dropout: float = Field(0.0, ge=0, lt=1)
    dense: list[int] = Field(default_factory=lambda: [64])
    dense_norm: bool = False
    head: Literal["flatten", "gap"] = "flatten"

    _known_init = field_validator("init")(classmethod(lambda cls, v: check_initializer(v)))

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        if value not in ACTIVATIONS:
            raise ValueError(ACTIVATIONS.unknown_message(value))
        return value


@MODELS.register(
    "cnn",
    description="Small CNN for images: conv blocks with batch norm and pooling, dense head",
    params=CNNParams,
)
def build_cnn(p: CNNParams, info: TaskInfo) -> nn.Module:
    """A CNN for inputs of shape (C, H, W)."""
    input_shape, output_dim = info.input_shape, info.output_dim
    if len(input_shape) != 3:
        raise ValueError(
            f"model 'cnn' needs image inputs of shape (channels, height, width), got {input_shape}"
        )
    c_in, h, w = input_shape
    layers: list[nn.Module] = []
    for c_out in p.channels:
        groups = p.groups if c_in % p.groups == 0 and c_out % p.groups == 0 else 1
        layers.append(
            nn.Conv2d(
                c_in, c_out, p.kernel_size, padding=p.padding, groups=groups, bias=p.norm == "none"
            )
        )
        if p.norm == "batch":
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(make_activation(p.activation))
        if p.pool != "none" and min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2) if p.pool == "max" else nn.AvgPool2d(2))
            h, w = h // 2, w // 2
        if p.dropout > 0:
            layers.append(nn.Dropout(p.dropout))
        c_in = c_out
    if p.head == "gap":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        n = c_in
    else:
        layers.append(nn.Flatten())
        n = c_in * h * w
    for width in p.dense:
        layers.append(nn.Linear(n, width))
        if p.dense_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(make_activation(p.activation))
        n = width
    layers.append(nn.Linear(n, output_dim))
    return initialize(nn.Sequential(*layers), p.init)
