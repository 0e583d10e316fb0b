"""Activation functions a recipe may name (`activation: relu` or `{name: leaky_relu, ...}`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from torch import nn

from trainlab.params import StrictModel
from trainlab.registry import Registry

ACTIVATIONS: Registry = Registry("activation")


class ActivationSpec(StrictModel):
    """An activation and its options; a bare name (`relu`) is the short form.

    Args:
        negative_slope: slope of `leaky_relu` for x < 0.
        alpha: scale of the negative part of `elu`.
    """

    name: str = "relu"
    negative_slope: float = Field(0.01, ge=0)
    alpha: float = Field(1.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _known(self) -> ActivationSpec:
        if self.name not in ACTIVATIONS:
            raise ValueError(ACTIVATIONS.unknown_message(self.name))
        return self


for _name, _make, _desc in [
    ("relu", lambda s: nn.ReLU(), "max(0, x): the default for deep nets; can leave dead units"),
    (
        "leaky_relu",
        lambda s: nn.LeakyReLU(s.negative_slope),
        "ReLU with a small negative slope (negative_slope), so no unit is ever dead",
    ),
    (
        "elu",
        lambda s: nn.ELU(s.alpha),
        "smooth negative saturation (alpha); mean activations closer to zero",
    ),
    (
        "selu",
        lambda s: nn.SELU(),
        "scaled ELU; self-normalizing with init: self_normalizing (LeCun-normal, alpha dropout)",
    ),
    ("sigmoid", lambda s: nn.Sigmoid(), "squashes to (0, 1); saturates, gradients vanish"),
    ("tanh", lambda s: nn.Tanh(), "squashes to (-1, 1), zero-centred; saturates in deep stacks"),
    ("gelu", lambda s: nn.GELU(), "Gaussian error linear unit, smooth ReLU used in transformers"),
    ("silu", lambda s: nn.SiLU(), "x·sigmoid(x) (swish), smooth and non-monotonic"),
    (
        "linear",
        lambda s: nn.Identity(),
        "no activation (identity), e.g. Keras layers declared without `activation=`",
    ),
]:
    ACTIVATIONS.add(_name, _make, description=_desc)


def make_activation(spec: ActivationSpec | str) -> nn.Module:
    """A fresh activation module for `spec` (RecipeError with did-you-mean if unknown)."""
    if isinstance(spec, str):
        ACTIVATIONS.get(spec, where="model.activation")  # did-you-mean for an unknown name
        spec = ActivationSpec(name=spec)
    return ACTIVATIONS.get(spec.name, where="model.activation").builder(spec)
