"""Weight initializers a recipe may name (`model.init`).

The choice matters more than it looks: zeros leave every hidden unit identical
(symmetry is never broken), a too-small normal makes deep nets' gradients vanish,
Xavier/Glorot suits tanh and sigmoid, He/Kaiming suits ReLU. `keras` reproduces Keras
defaults (Glorot-uniform weights, zero biases) for users porting Keras code.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainlab.registry import Registry

INITIALIZERS: Registry = Registry("initializer")

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _each_layer(fn: Callable[[nn.Module], None]) -> Callable[[nn.Module], None]:
    def apply(model: nn.Module) -> None:
        for layer in model.modules():
            if isinstance(layer, _WEIGHTED):
                fn(layer)

    return apply


def _zero_bias(layer: nn.Module) -> None:
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def _register(name: str, weight_fn: Callable, description: str) -> None:
    def fn(layer: nn.Module) -> None:
        weight_fn(layer.weight)
        _zero_bias(layer)

    INITIALIZERS.add(name, _each_layer(fn), description=description)


INITIALIZERS.add(
    "torch", lambda model: None, description="PyTorch's defaults (Kaiming-uniform, a=√5)"
)
_register("zeros", nn.init.zeros_, "all weights zero: units stay identical — a warning example")
_register("normal", lambda w: nn.init.normal_(w, 0.0, 0.01), "normal(0, 0.01) weights, zero biases")
_register("xavier_uniform", nn.init.xavier_uniform_, "Glorot uniform: for tanh/sigmoid layers")
_register("xavier_normal", nn.init.xavier_normal_, "Glorot normal: for tanh/sigmoid layers")
_register(
    "kaiming_uniform",
    lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "He uniform (fan-in, ReLU gain): for ReLU layers",
)
_register(
    "kaiming_normal",
    lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "He normal (fan-in, ReLU gain): for ReLU layers",
)
_register("keras", nn.init.xavier_uniform_, "Keras defaults: Glorot-uniform weights, zero biases")


def initialize(model: nn.Module, name: str) -> nn.Module:
    """Apply initializer `name` to every linear and convolution layer of `model`."""
    INITIALIZERS.get(name, where="model.init").builder(model)
    return model


def check_initializer(name: str) -> str:
    """Pydantic validator helper: the name must be registered."""
    if name not in INITIALIZERS:
        raise ValueError(INITIALIZERS.unknown_message(name))
    return name
