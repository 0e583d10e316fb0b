"""Multi-layer perceptron: flatten, then dense blocks (linear → norm → activation → dropout)."""

from __future__ import annotations

import math

from pydantic import Field, field_validator
from torch import nn

from trainlab.config.base import StrictModel
from trainlab.models.activations import ACTIVATIONS, make_activation
from trainlab.models.init import check_initializer, initialize
from trainlab.models.registry import MODELS
from trainlab.tasks import TaskInfo


class MLPParams(StrictModel):
    """Hyper-parameters of `mlp`."""

    hidden: list[int] = Field(default_factory=lambda: [128])
    activation: str = "relu"
    init: str = "torch"
    dropout: float = Field(0.0, ge=0, lt=1)
    norm: str = "none"

    @field_validator("hidden")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(h <= 0 for h in value):
            raise ValueError(f"hidden sizes must be positive (got {value})")
        return value

    _known_init = field_validator("init")(classmethod(lambda cls, v: check_initializer(v)))

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        if value not in ACTIVATIONS:
            raise ValueError(ACTIVATIONS.unknown_message(value))
        return value

    @field_validator("norm")
    @classmethod
    def _known_norm(cls, value: str) -> str:
        if value not in ("none", "batch", "layer"):
            raise ValueError(f"norm must be none, batch or layer (got {value!r})")
        return value


def dense_block(n_in: int, n_out: int, p: MLPParams) -> list[nn.Module]:
    """Linear, optional normalization, activation, optional dropout."""
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    if p.norm == "batch":
        layers.append(nn.BatchNorm1d(n_out))
    elif p.norm == "layer":
        layers.append(nn.LayerNorm(n_out))
    layers.append(make_activation(p.activation))
    if p.dropout > 0:
        layers.append(nn.Dropout(p.dropout))
    return layers


@MODELS.register(
    "mlp",
    description="Multi-layer perceptron for tables and flattened images",
    params=MLPParams,
)
def build_mlp(p: MLPParams, info: TaskInfo) -> nn.Module:
    """An MLP from `input_shape` (any shape, flattened) to `output_dim` outputs."""
    n_in, output_dim = math.prod(info.input_shape), info.output_dim
    layers: list[nn.Module] = [nn.Flatten()]
    for width in p.hidden:
        layers += dense_block(n_in, width, p)
        n_in = width
    layers.append(nn.Linear(n_in, output_dim))
    return initialize(nn.Sequential(*layers), p.init)
