"""Activation functions a recipe may name."""

from __future__ import annotations

from torch import nn

from trainlab.registry import Registry

ACTIVATIONS: Registry = Registry("activation")

for _name, _cls, _desc in [
    ("relu", nn.ReLU, "max(0, x): the default for deep nets; can leave dead units"),
    ("leaky_relu", nn.LeakyReLU, "ReLU with a small negative slope, so no unit is ever dead"),
    ("elu", nn.ELU, "smooth negative saturation; mean activations closer to zero"),
    ("selu", nn.SELU, "scaled ELU; self-normalizing with LeCun-normal init and alpha dropout"),
    ("sigmoid", nn.Sigmoid, "squashes to (0, 1); saturates, prone to vanishing gradients"),
    ("tanh", nn.Tanh, "squashes to (-1, 1), zero-centred; saturates in deep stacks"),
    ("gelu", nn.GELU, "Gaussian error linear unit, smooth ReLU used in transformers"),
    ("silu", nn.SiLU, "x·sigmoid(x) (swish), smooth and non-monotonic"),
]:
    ACTIVATIONS.add(_name, _cls, description=_desc)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module called `name` (RecipeError with did-you-mean if unknown)."""
    return ACTIVATIONS.get(name, where="model.activation").builder()
