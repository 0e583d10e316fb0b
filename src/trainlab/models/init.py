"""Weight initializers a recipe may name (`model.init`), chosen per layer kind.

The choice matters more than it looks: zeros leave every hidden unit identical
(symmetry is never broken), a too-small normal makes deep nets' gradients vanish,
Xavier/Glorot suits tanh and sigmoid, He/Kaiming suits ReLU, LeCun-normal suits SELU.

`model.init` is either a name — an initializer (`he_normal`) applied to every weight, or a
preset (`keras`, `torch`, `self_normalizing`) — or a mapping choosing per layer kind:

    init: {scheme: kaiming_normal, mode: fan_out, embedding: normal, std: 0.05, bias: zeros}

Presets:
- `torch`: leave PyTorch's defaults (Kaiming-uniform with a=√5, small uniform biases).
- `keras`: Keras defaults — Glorot-uniform kernels, orthogonal recurrent kernels,
  uniform(±0.05) embeddings, zero biases, and batch norm with momentum 0.99 (0.01 in torch
  terms) and epsilon 1e-3 — so code ported from Keras reproduces its results.
- `self_normalizing`: LeCun-normal weights, zero biases (pair with `selu`; the MLP then
  uses alpha dropout).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from trainlab.params import StrictModel
from trainlab.registry import Registry

INITIALIZERS: Registry = Registry("initializer")
INIT_PRESETS: Registry = Registry("initializer preset")

#: Initializers that make sense for a 1-D tensor (biases).
BIAS_SCHEMES = ("torch", "zeros", "constant", "normal", "uniform")


def _init_from_name(value: str) -> dict[str, Any]:
    """The mapping a bare `init: NAME` stands for: a preset, or one scheme for every layer."""
    if value in INIT_PRESETS:
        return dict(INIT_PRESETS.get(value).builder, preset=value)
    if value in INITIALIZERS:
        return {"scheme": value}
    raise ValueError(
        f"unknown initializer or preset '{value}'; available: "
        f"{', '.join(INIT_PRESETS.names() + INITIALIZERS.names())}"
    )


class InitSpec(StrictModel):
    """`model.init`: initializer per layer kind, their options and batch-norm settings.

    Args:
        scheme: initializer for every weight whose kind is not set below.
        linear / conv / embedding / recurrent: per-kind initializer (recurrent = the
            hidden-to-hidden matrices of LSTM/GRU); None means `scheme`.
        bias: initializer for biases (None: zeros, or PyTorch's when scheme is torch).
        std / mean: of `normal`; bound: of `uniform` (±bound); value: of `constant`.
        mode / nonlinearity / negative_slope: Kaiming's fan mode and gain.
        gain: Xavier's and orthogonal's gain.
        bn_momentum / bn_eps: override every batch-norm layer's (torch-convention)
            momentum and epsilon; the keras preset sets 0.01 and 1e-3.
        bn_warm_start: with bn_momentum, average the running statistics cumulatively
            until 1/bn_momentum batches have been seen, then exponentially. Without it a
            small momentum keeps the running statistics near their initial (0, 1) for
            hundreds of steps, so the first evaluations of a short fit normalize with the
            wrong statistics (seed 003's CNN: 0.18 validation accuracy after epoch 1).
        preset: the preset this spec was expanded from (informational).
    """

    scheme: str = "torch"
    linear: str | None = None
    conv: str | None = None
    embedding: str | None = None
    recurrent: str | None = None
    bias: str | None = None
    std: float = Field(0.01, gt=0)
    mean: float = 0.0
    bound: float = Field(0.05, gt=0)
    value: float = 0.0
    mode: Literal["fan_in", "fan_out"] = "fan_in"
    nonlinearity: Literal["relu", "leaky_relu", "linear", "tanh", "sigmoid", "selu"] = "relu"
    negative_slope: float = Field(0.0, ge=0)
    gain: float = Field(1.0, gt=0)
    bn_momentum: float | None = Field(None, gt=0, le=1)
    bn_eps: float | None = Field(None, gt=0)
    bn_warm_start: bool = True
    preset: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _init_from_name(value)
        if isinstance(value, dict) and "name" in value:
            # `--set model.init.bn_eps=1e-5` on `init: keras` arrives as {name: keras, …}
            rest = {k: v for k, v in value.items() if k != "name"}
            return {**_init_from_name(value["name"]), **rest}
        if isinstance(value, dict) and value.get("preset") is not None:
            # {preset: keras, bn_warm_start: false}: the preset, with the given keys changed
            name = value["preset"]
            if name not in INIT_PRESETS:
                raise ValueError(INIT_PRESETS.unknown_message(name))
            return {**INIT_PRESETS.get(name).builder, **value}
        return value

    @model_validator(mode="after")
    def _known(self) -> InitSpec:
        for key in ("scheme", "linear", "conv", "embedding", "recurrent", "bias"):
            name = getattr(self, key)
            if name is not None and name not in INITIALIZERS:
                raise ValueError(f"init.{key}: {INITIALIZERS.unknown_message(name)}")
        if self.bias is not None and self.bias not in BIAS_SCHEMES:
            raise ValueError(
                f"init.bias must be one of {', '.join(BIAS_SCHEMES)} (got {self.bias!r})"
            )
        return self

    def for_kind(self, kind: str) -> str:
        """The initializer name for weights of `kind` (linear, conv, embedding, recurrent)."""
        return getattr(self, kind) or self.scheme

    @property
    def bias_scheme(self) -> str:
        """The initializer for biases: explicit, else zeros unless everything is torch's."""
        return self.bias or ("torch" if self.scheme == "torch" else "zeros")


def _fan_in(w: torch.Tensor) -> int:
    return w.shape[1] * math.prod(w.shape[2:]) if w.dim() > 1 else w.shape[0]


def _kaiming(fn: Callable) -> Callable[[torch.Tensor, InitSpec], None]:
    def apply(w: torch.Tensor, s: InitSpec) -> None:
        fn(w, a=s.negative_slope, mode=s.mode, nonlinearity=s.nonlinearity)

    return apply


def _lecun_normal(w: torch.Tensor, s: InitSpec) -> None:
    with torch.no_grad():
        w.normal_(0.0, 1.0 / math.sqrt(_fan_in(w)))


_SCHEMES: list[tuple[str, Callable[[torch.Tensor, InitSpec], Any], str]] = [
    ("torch", lambda w, s: None, "keep PyTorch's default (Kaiming-uniform with a=√5)"),
    ("zeros", lambda w, s: nn.init.zeros_(w), "all zero: units stay identical — a warning example"),
    ("constant", lambda w, s: nn.init.constant_(w, s.value), "every weight = `value`"),
    ("normal", lambda w, s: nn.init.normal_(w, s.mean, s.std), "normal(mean, std), std 0.01"),
    ("uniform", lambda w, s: nn.init.uniform_(w, -s.bound, s.bound), "uniform(±bound), 0.05"),
    (
        "xavier_uniform",
        lambda w, s: nn.init.xavier_uniform_(w, s.gain),
        "Glorot uniform, ±sqrt(6/(fan_in+fan_out)): for tanh/sigmoid layers",
    ),
    (
        "xavier_normal",
        lambda w, s: nn.init.xavier_normal_(w, s.gain),
        "Glorot normal, std sqrt(2/(fan_in+fan_out)): for tanh/sigmoid layers",
    ),
    (
        "kaiming_uniform",
        _kaiming(nn.init.kaiming_uniform_),
        "He uniform (mode, nonlinearity, negative_slope): for ReLU layers",
    ),
    (
        "kaiming_normal",
        _kaiming(nn.init.kaiming_normal_),
        "He normal, std gain/sqrt(fan): for ReLU layers",
    ),
    (
        "orthogonal",
        lambda w, s: nn.init.orthogonal_(w, s.gain),
        "orthogonal matrix (× gain): for recurrent weights",
    ),
    ("lecun_normal", _lecun_normal, "normal, std 1/sqrt(fan_in): for SELU (self-normalizing)"),
]
for _name, _fn, _desc in _SCHEMES:
    INITIALIZERS.add(_name, _fn, description=_desc)
for _alias, _target in [
    ("glorot_uniform", "xavier_uniform"),
    ("glorot_normal", "xavier_normal"),
    ("he_uniform", "kaiming_uniform"),
    ("he_normal", "kaiming_normal"),
]:
    INITIALIZERS.add(
        _alias, INITIALIZERS.get(_target).builder, description=f"alias of {_target}", alias=_target
    )

INIT_PRESETS.add("torch", {"scheme": "torch"}, description="PyTorch's defaults, untouched")
INIT_PRESETS.add(
    "keras",
    {
        "scheme": "xavier_uniform",
        "recurrent": "orthogonal",
        "embedding": "uniform",
        "bound": 0.05,
        "bias": "zeros",
        "bn_momentum": 0.01,
        "bn_eps": 1e-3,
    },
    description="Keras defaults: Glorot-uniform weights, zero biases, BN momentum 0.99, eps 1e-3",
)
INIT_PRESETS.add(
    "self_normalizing",
    {"scheme": "lecun_normal", "bias": "zeros"},
    description="LeCun-normal weights, zero biases: with selu (and alpha dropout in mlp)",
)


def _weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor, torch.Tensor | None]]:
    """(kind, weight, bias) for every initializable weight of `model`."""
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            yield "linear", layer.weight, layer.bias
        elif isinstance(layer, nn.modules.conv._ConvNd):
            yield "conv", layer.weight, layer.bias
        elif isinstance(layer, nn.Embedding):
            yield "embedding", layer.weight, None
        elif isinstance(layer, nn.RNNBase):
            for name, param in layer.named_parameters():
                if name.startswith("weight_hh"):
                    yield "recurrent", param, None
                elif name.startswith("weight"):
                    yield "linear", param, None
                else:
                    yield "bias", param, None
        elif hasattr(layer, "expert_weights"):
            # stacked expert matrices (experts, out, in): each slice is one linear layer
            for w, b in layer.expert_weights():
                for e in range(w.shape[0]):
                    yield "linear", w[e], b[e] if b is not None else None


def initialize(model: nn.Module, spec: InitSpec | str) -> nn.Module:
    """Apply `spec` to every linear, conv, embedding and recurrent weight of `model`.

    Also applies the spec's batch-norm momentum/epsilon to every batch-norm layer, and
    keeps embedding padding rows at zero.
    """
    if isinstance(spec, str):
        spec = InitSpec.model_validate(spec)
    bias_fn = INITIALIZERS.get(spec.bias_scheme).builder
    with torch.no_grad():
        for kind, weight, bias in _weights(model):
            if kind == "bias":
                bias_fn(weight, spec)
                continue
            INITIALIZERS.get(spec.for_kind(kind)).builder(weight, spec)
            if bias is not None:
                bias_fn(bias, spec)
        for layer in model.modules():
            if isinstance(layer, nn.Embedding) and layer.padding_idx is not None:
                layer.weight[layer.padding_idx].zero_()
    set_batchnorm(model, spec.bn_momentum, spec.bn_eps, spec.bn_warm_start)
    return model


def set_batchnorm(
    model: nn.Module, momentum: float | None, eps: float | None, warm_start: bool = False
) -> None:
    """Set momentum (torch convention: weight of the new batch) and eps of every BN layer.

    With `warm_start`, batch t (counting from 0) is averaged in with weight
    max(momentum, 1/(t+1)): a cumulative mean at first, the exponential one afterwards.
    The count is the layer's `num_batches_tracked` buffer, so a resumed run continues it.
    """
    from trainlab.models.norms import BatchRenorm

    for layer in model.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm | BatchRenorm):
            if momentum is not None:
                layer.momentum = momentum
                if warm_start and getattr(layer, "track_running_stats", True):
                    layer.register_forward_pre_hook(_warm_start_hook(momentum))
            if eps is not None:
                layer.eps = eps


def _warm_start_hook(momentum: float) -> Callable[[nn.Module, Any], None]:
    def hook(layer: nn.Module, inputs: Any) -> None:
        # momentum None is a cumulative pass (`update_bn`): leave it alone.
        if layer.training and layer.momentum is not None:
            layer.momentum = max(momentum, 1.0 / (int(layer.num_batches_tracked) + 1))

    return hook
