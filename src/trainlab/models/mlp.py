"""Multi-layer perceptron: flatten, then dense blocks (linear → norm → activation → dropout)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator
from torch import nn

from trainlab.models.activations import ActivationSpec, make_activation
from trainlab.models.init import InitSpec, initialize
from trainlab.models.layers import MixtureOfExperts, PeriodicEmbedding
from trainlab.models.norms import NormSpec, make_norm
from trainlab.models.registry import MODELS
from trainlab.params import StrictModel
from trainlab.tasks import TaskInfo


class MoESpec(StrictModel):
    """`model.moe`: replace one hidden dense layer of the MLP by a mixture of experts.

    Args:
        layer: index in `hidden` of the dense layer to replace (negative counts from the end).
        experts / top_k: number of experts and how many each input is routed to.
        hidden: each expert's inner width (a two-layer expert); None = one dense layer.
        aux_weight: weight of the load-balancing auxiliary loss added during training.
    """

    layer: int = -1
    experts: int = Field(4, ge=1)
    top_k: int = Field(2, ge=1)
    hidden: int | None = Field(None, gt=0)
    aux_weight: float = Field(0.01, ge=0)


class NumericEmbeddingSpec(StrictModel):
    """`model.numeric_embedding`: periodic embeddings of a table's numeric columns.

    Args:
        frequencies: trainable frequencies per column (sin and cos of each).
        sigma: standard deviation of the initial frequencies (larger: sharper shapes).
        dim: embedding width per numeric column.
    """

    kind: Literal["periodic"] = "periodic"
    frequencies: int = Field(16, gt=0)
    sigma: float = Field(0.1, gt=0)
    dim: int = Field(16, gt=0)


class MLPParams(StrictModel):
    """Hyper-parameters of `mlp`.

    Args:
        norm_position: batch/layer norm before the activation (Ioffe & Szegedy) or after
            it (what `Dense(activation=...)` followed by `BatchNormalization()` does in Keras).
        dropout_kind: `alpha` keeps SELU's self-normalization (the default when the
            activation is selu and init is self_normalizing).
    """

    hidden: list[int] = Field(default_factory=lambda: [128])
    activation: ActivationSpec = ActivationSpec(name="relu")
    init: InitSpec = InitSpec()
    dropout: float = Field(0.0, ge=0, lt=1)
    dropout_kind: Literal["auto", "standard", "alpha"] = "auto"
    norm: NormSpec = NormSpec()
    norm_position: Literal["before_activation", "after_activation"] = "before_activation"
    moe: MoESpec | None = None
    numeric_embedding: NumericEmbeddingSpec | None = None

    @field_validator("hidden")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(h <= 0 for h in value):
            raise ValueError(f"hidden sizes must be positive (got {value})")
        return value


def dense_block(n_in: int, n_out: int, p: MLPParams, linear: nn.Module | None = None) -> list:
    """Linear (or `linear`), optional normalization, activation, optional dropout."""
    layers: list[nn.Module] = [linear if linear is not None else nn.Linear(n_in, n_out)]
    norm = make_norm(p.norm, n_out, spatial=False)
    act = make_activation(p.activation)
    pair = (norm, act) if p.norm_position == "before_activation" else (act, norm)
    layers += [m for m in pair if m is not None]
    if p.dropout > 0:
        alpha = p.dropout_kind == "alpha" or (
            p.dropout_kind == "auto"
            and p.activation.name == "selu"
            and p.init.preset == "self_normalizing"
        )
        layers.append(nn.AlphaDropout(p.dropout) if alpha else nn.Dropout(p.dropout))
    return layers


@MODELS.register(
    "mlp",
    description="Multi-layer perceptron for tables and flattened images; optional MoE layer",
    params=MLPParams,
)
def build_mlp(p: MLPParams, info: TaskInfo) -> nn.Module:
    """An MLP from `input_shape` (any shape, flattened) to `output_dim` outputs.

    Use it for tabular data and as the baseline for images; `norm`, `dropout` and the
    `self_normalizing` init with selu are the seeds' remedies for deep MLPs.
    """
    n_in, output_dim = math.prod(info.input_shape), info.output_dim
    moe_at = None
    if p.moe is not None:
        if not p.hidden:
            raise ValueError("moe needs at least one hidden layer to replace; set model.hidden")
        if not -len(p.hidden) <= p.moe.layer < len(p.hidden):
            raise ValueError(
                f"moe.layer {p.moe.layer} is out of range for hidden {p.hidden}; "
                f"use 0..{len(p.hidden) - 1} or -1"
            )
        moe_at = p.moe.layer % len(p.hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    if p.numeric_embedding is not None:
        embedding = _numeric_embedding(p.numeric_embedding, info)
        layers.append(embedding)
        n_in += embedding.out_features
    for i, width in enumerate(p.hidden):
        linear = None
        if i == moe_at:
            m = p.moe
            linear = MixtureOfExperts(
                n_in, width, m.experts, m.top_k, m.hidden, p.activation, m.aux_weight
            )
        layers += dense_block(n_in, width, p, linear)
        n_in = width
    layers.append(nn.Linear(n_in, output_dim))
    return initialize(nn.Sequential(*layers), p.init)


def _numeric_embedding(spec: NumericEmbeddingSpec, info: TaskInfo) -> PeriodicEmbedding:
    """The embedding of the table's leading numeric columns (`features.continuous`)."""
    n = int(info.features.get("continuous", 0))
    if info.features.get("kind") != "tabular" or n == 0:
        raise ValueError(
            "numeric_embedding needs a table with numeric columns (and no pca); remove "
            "model.numeric_embedding"
        )
    return PeriodicEmbedding(n, spec.frequencies, spec.sigma, spec.dim)
