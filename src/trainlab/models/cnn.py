"""Convolutional network: conv blocks (conv → norm → activation → pool → dropout), dense head."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from torch import nn

from trainlab.models.activations import ActivationSpec, make_activation
from trainlab.models.init import InitSpec, initialize
from trainlab.models.layers import GlobalAvgPool
from trainlab.models.norms import NormSpec, make_norm
from trainlab.models.registry import MODELS
from trainlab.params import StrictModel
from trainlab.tasks import TaskInfo


class CNNParams(StrictModel):
    """Hyper-parameters of `cnn`: one conv block per entry of `channels`.

    Args:
        kernel_size / stride / groups: one value for every block, or one per block.
            `groups` > 1 makes a group convolution (ResNeXt/AlexNet); it applies to the
            blocks whose input and output channels it divides (not to a 1-channel input).
        padding: pixels, `same` (k // 2) or `valid` (0, Keras' default).
        conv_activation: the conv blocks' activation if it differs from `activation`
            (`linear` for Keras Conv2D layers declared without one).
        norm_position: norm before the activation or after it (Keras Dense(relu) → BN).
        dense_norm: also normalize the dense layers with `norm`.
        head: `flatten` then dense layers, or `gap` (global average pooling) — far fewer
            parameters and any input size.
    """

    channels: list[int] = Field(default_factory=lambda: [32, 64])
    kernel_size: int | list[int] = 3
    stride: int | list[int] = 1
    padding: int | Literal["same", "valid"] = "same"
    groups: int | list[int] = 1
    pool: Literal["max", "avg", "none"] = "max"
    pool_size: int = Field(2, gt=0)
    norm: NormSpec = NormSpec(name="batch")
    norm_position: Literal["before_activation", "after_activation"] = "before_activation"
    activation: ActivationSpec = ActivationSpec(name="relu")
    conv_activation: ActivationSpec | None = None
    init: InitSpec = InitSpec()
    dropout: float = Field(0.0, ge=0, lt=1)
    dense: list[int] = Field(default_factory=lambda: [64])
    dense_norm: bool = False
    dense_dropout: float = Field(0.0, ge=0, lt=1)
    head: Literal["flatten", "gap"] = "flatten"

    @model_validator(mode="after")
    def _per_block_lengths(self) -> CNNParams:
        for key in ("kernel_size", "stride", "groups"):
            value = getattr(self, key)
            if isinstance(value, list) and len(value) != len(self.channels):
                raise ValueError(
                    f"{key} has {len(value)} values but channels has {len(self.channels)} "
                    "blocks; give one value or one per block"
                )
            values = value if isinstance(value, list) else [value]
            if any(v <= 0 for v in values):
                raise ValueError(f"{key} must be positive (got {value})")
        return self

    def per_block(self, key: str, i: int) -> int:
        """Block i's value of a scalar-or-list option."""
        value = getattr(self, key)
        return value[i] if isinstance(value, list) else value


def _ordered(norm: nn.Module | None, act: nn.Module, position: str) -> list[nn.Module]:
    pair = (norm, act) if position == "before_activation" else (act, norm)
    return [m for m in pair if m is not None and not isinstance(m, nn.Identity)]


@MODELS.register(
    "cnn",
    description="CNN for images: conv blocks (norm, pooling, group conv), flatten or GAP head",
    params=CNNParams,
)
def build_cnn(p: CNNParams, info: TaskInfo) -> nn.Module:
    """A CNN for inputs of shape (C, H, W).

    Use it for small images (MNIST, CIFAR-style); it reproduces the seeds' Keras CNNs
    layer for layer (see examples/mnist_cnn_bn.yaml).
    """
    input_shape, output_dim = info.input_shape, info.output_dim
    if len(input_shape) != 3:
        raise ValueError(
            f"model 'cnn' needs image inputs of shape (channels, height, width), got {input_shape}"
        )
    c_in, h, w = input_shape
    conv_act = p.conv_activation or p.activation
    layers: list[nn.Module] = []
    for i, c_out in enumerate(p.channels):
        k, stride, groups = (p.per_block(key, i) for key in ("kernel_size", "stride", "groups"))
        pad = {"same": k // 2, "valid": 0}.get(p.padding, p.padding)  # type: ignore[arg-type]
        if c_in % groups or c_out % groups:
            groups = 1
        norm = make_norm(p.norm, c_out, spatial=True)
        layers.append(nn.Conv2d(c_in, c_out, k, stride, pad, groups=groups, bias=norm is None))
        h, w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        if h < 1 or w < 1:
            raise ValueError(
                f"conv block {i + 1} shrinks the {input_shape[1:]} image to nothing; "
                "use padding: same, a smaller kernel_size/stride or fewer blocks"
            )
        layers += _ordered(norm, make_activation(conv_act), p.norm_position)
        if p.pool != "none" and min(h, w) >= p.pool_size:
            pool = nn.MaxPool2d if p.pool == "max" else nn.AvgPool2d
            layers.append(pool(p.pool_size))
            h, w = h // p.pool_size, w // p.pool_size
        if p.dropout > 0:
            layers.append(nn.Dropout(p.dropout))
        c_in = c_out
    if p.head == "gap":
        layers.append(GlobalAvgPool())
        n = c_in
    else:
        layers.append(nn.Flatten())
        n = c_in * h * w
    for width in p.dense:
        layers.append(nn.Linear(n, width))
        norm = make_norm(p.norm, width, spatial=False) if p.dense_norm else None
        layers += _ordered(norm, make_activation(p.activation), p.norm_position)
        if p.dense_dropout > 0:
            layers.append(nn.Dropout(p.dense_dropout))
        n = width
    layers.append(nn.Linear(n, output_dim))
    return initialize(nn.Sequential(*layers), p.init)
