"""Optimizer registry: the torch optimizers a recipe may name, with validated parameters.

A recipe names its optimizer and that optimizer's own knobs
(`optimizer: {name: sgd, momentum: 0.9, nesterov: true}`); the learning rate and the
weight decay are not optimizer knobs but training knobs (`train.lr`,
`train.weight_decay`), because schedules, tuning and the LR finder act on them whatever
the optimizer. Each entry carries timm-style metadata (`has_momentum`, `has_betas`,
`torch_class`, `suggested_lr`) so the CLI can list what exists and tests can run every
optimizer through the same convergence check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

import torch
from pydantic import BaseModel, Field, model_validator
from torch import nn

from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.registry import Entry, Registry

__all__ = [
    "OPTIMIZERS",
    "AdadeltaParams",
    "AdagradParams",
    "AdamParams",
    "RMSpropParams",
    "SGDParams",
    "build_optimizer",
    "coerce_params",
    "split_decay_groups",
]

OptimizerBuilder = Callable[[list[dict[str, Any]], BaseModel, float, float], torch.optim.Optimizer]

OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")

Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class SGDParams(StrictModel):
    """Stochastic gradient descent, optionally with (Nesterov) momentum."""

    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    dampening: float = Field(0.0, ge=0.0, le=1.0)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDParams:
        if self.nesterov and (self.momentum <= 0.0 or self.dampening != 0.0):
            raise ValueError(
                "nesterov: true needs momentum > 0 and dampening = 0 "
                f"(got momentum={self.momentum}, dampening={self.dampening}); "
                "set e.g. momentum: 0.9 or nesterov: false"
            )
        return self


class AdamParams(StrictModel):
    """Adam / AdamW moment estimates (`betas`), denominator `eps`, and AMSGrad."""

    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    amsgrad: bool = False


class AdagradParams(StrictModel):
    """Adagrad's built-in lr decay, accumulator start value and denominator `eps`."""

    lr_decay: float = Field(0.0, ge=0.0)
    initial_accumulator_value: float = Field(0.0, ge=0.0)
    eps: float = Field(1e-10, gt=0.0)


class AdadeltaParams(StrictModel):
    """Adadelta's running-average coefficient `rho` and denominator `eps`."""

    rho: float = Field(0.9, ge=0.0, le=1.0)
    eps: float = Field(1e-6, gt=0.0)


class RMSpropParams(StrictModel):
    """RMSprop's smoothing constant `alpha`, `eps`, momentum and centered variant."""

    alpha: float = Field(0.99, ge=0.0, lt=1.0)
    eps: float = Field(1e-8, gt=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    centered: bool = False


def _torch_builder(torch_class: type[torch.optim.Optimizer]) -> OptimizerBuilder:
    """A builder `(groups, knobs, lr, weight_decay) -> optimizer` for `torch_class`.

    lr and weight_decay become the optimizer's defaults too, so a group added later
    (e.g. when unfreezing layers) gets the recipe's values, not torch's.
    """

    def build(
        groups: list[dict[str, Any]], params: BaseModel, lr: float, weight_decay: float
    ) -> torch.optim.Optimizer:
        return torch_class(groups, lr=lr, weight_decay=weight_decay, **params.model_dump())

    build.__name__ = f"build_{torch_class.__name__.lower()}"
    build.__doc__ = f"Build torch.optim.{torch_class.__name__} from param groups and knobs."
    return build


def _register(
    name: str,
    torch_class: type[torch.optim.Optimizer],
    params: type[BaseModel],
    description: str,
    *,
    has_momentum: bool,
    has_betas: bool,
    suggested_lr: float,
) -> None:
    OPTIMIZERS.add(
        name,
        _torch_builder(torch_class),
        description=description,
        params=params,
        has_momentum=has_momentum,
        has_betas=has_betas,
        torch_class=torch_class,
        suggested_lr=suggested_lr,
    )


_register(
    "sgd",
    torch.optim.SGD,
    SGDParams,
    "SGD with optional (Nesterov) momentum; the strongest final accuracy on many vision "
    "tasks given a tuned lr and schedule",
    has_momentum=True,
    has_betas=False,
    suggested_lr=0.1,
)
_register(
    "adam",
    torch.optim.Adam,
    AdamParams,
    "Adam: per-parameter adaptive steps; a robust default needing little lr tuning "
    "(weight_decay is L2 added to the gradient)",
    has_momentum=False,
    has_betas=True,
    suggested_lr=1e-3,
)
_register(
    "adamw",
    torch.optim.AdamW,
    AdamParams,
    "AdamW: Adam with decoupled weight decay; prefer it to adam whenever weight_decay > 0",
    has_momentum=False,
    has_betas=True,
    suggested_lr=1e-3,
)
_register(
    "adagrad",
    torch.optim.Adagrad,
    AdagradParams,
    "Adagrad: steps shrink with the accumulated squared gradient; suits sparse features",
    has_momentum=False,
    has_betas=False,
    suggested_lr=1e-2,
)
_register(
    "adadelta",
    torch.optim.Adadelta,
    AdadeltaParams,
    "Adadelta: Adagrad without the ever-shrinking step; lr 1.0 is the usual value",
    has_momentum=False,
    has_betas=False,
    suggested_lr=1.0,
)
_register(
    "rmsprop",
    torch.optim.RMSprop,
    RMSpropParams,
    "RMSprop: steps scaled by a running average of squared gradients; common for RNNs",
    has_momentum=True,
    has_betas=False,
    suggested_lr=1e-3,
)


def coerce_params(
    entry: Entry[Any], name: str, params: dict[str, Any] | BaseModel | None, where: str
) -> BaseModel:
    """Validate `params` for `entry`: a dict or any pydantic model (its dump is re-validated).

    A `name` key equal to the entry's name is tolerated so a recipe section such as
    `{name: sgd, momentum: 0.9}` can be passed as a whole; a different name is an error.
    """
    if isinstance(params, entry.params):
        return params
    if params is None:
        values: dict[str, Any] = {}
    elif isinstance(params, BaseModel):
        values = params.model_dump(exclude_unset=False)
    else:
        values = dict(params)
    if "name" in values:
        given = values.pop("name")
        if given != name:
            raise RecipeError(f"{where}.name: '{given}' does not match '{name}'")
    return entry.validate_params(values, where)


def _is_norm_module(module: nn.Module) -> bool:
    """Normalization layers: torch's norm classes and anything whose class says 'Norm'."""
    norm_types = (
        nn.modules.batchnorm._NormBase,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.LocalResponseNorm,
    )
    return isinstance(module, norm_types) or "Norm" in type(module).__name__


def _named_parameters_with_owner(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, nn.Module]]:
    """Every parameter once (shared ones at their first owner), with its owning module."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{module_name}.{param_name}" if module_name else param_name
            yield full, param, module


def split_decay_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split parameters into (decayed, not decayed).

    Not decayed: every parameter of a normalization layer and every bias (a 1-D
    parameter or a name ending in 'bias'). Decaying these pulls norm scales towards
    zero and biases towards the origin, which regularizes nothing useful and can hurt.
    Frozen parameters are kept (they get no gradient, so the optimizer skips them) so
    that unfreezing later needs no new optimizer.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for full_name, param, module in _named_parameters_with_owner(model):
        if _is_norm_module(module) or param.ndim <= 1 or full_name.endswith("bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return decay, no_decay


def part_groups(
    model: nn.Module,
    parts: Sequence[tuple[str, list[nn.Parameter]]],
    weight_decay: float,
    decay_norm_and_bias: bool,
) -> list[dict[str, Any]]:
    """One param group per part (two, decayed and not, when norms and biases keep no
    decay), in the parts' order; each parameter in the first part that holds it."""
    no_decay = set() if decay_norm_and_bias else {id(p) for p in split_decay_groups(model)[1]}
    placed: set[int] = set()
    every = [p for _, p, _ in _named_parameters_with_owner(model)]
    named = [*parts, ("rest", every)]
    groups: list[dict[str, Any]] = []
    for part, members in named:
        own = [p for p in members if id(p) not in placed]
        placed.update(id(p) for p in own)
        if decay_norm_and_bias:
            groups.append({"params": own, "weight_decay": weight_decay, "group": "all",
                           "part": part})  # fmt: skip
            continue
        groups.append({"params": [p for p in own if id(p) not in no_decay],
                       "weight_decay": weight_decay, "group": "decay", "part": part})
        groups.append({"params": [p for p in own if id(p) in no_decay],
                       "weight_decay": 0.0, "group": "no_decay", "part": part})  # fmt: skip
    return groups


def build_optimizer(
    model: nn.Module,
    name: str,
    params: dict[str, Any] | BaseModel | None,
    lr: float,
    weight_decay: float = 0.0,
    decay_norm_and_bias: bool = True,
    parts: Sequence[tuple[str, list[nn.Parameter]]] | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer called `name` over `model`'s parameters.

    Args:
        params: the optimizer's own knobs (e.g. `{"momentum": 0.9}`), validated against
            the entry's model; lr and weight decay come from the recipe's `train` section.
        decay_norm_and_bias: when False, norm-layer parameters and biases go in a second
            param group with weight_decay=0 (see `split_decay_groups`).
        parts: named parts of the model in forward order (`block1`, …, `head`), each
            given its own param groups so that its learning rate can differ
            (discriminative rates); parameters in no part go in a last part "rest".

    Each param group carries a `group` key: "all", or "decay" / "no_decay", and with
    `parts` a `part` key naming its part.
    Raises RecipeError for an unknown name (with did-you-mean) or an invalid knob.
    """
    entry = OPTIMIZERS.get(name, where="train.optimizer")
    knobs = coerce_params(entry, name, params, where="train.optimizer")
    if not lr > 0:
        raise RecipeError(f"train.lr: must be > 0 (got {lr!r})")
    if not weight_decay >= 0:
        raise RecipeError(f"train.weight_decay: must be >= 0 (got {weight_decay!r})")
    if parts:
        groups = part_groups(model, parts, weight_decay, decay_norm_and_bias)
    elif decay_norm_and_bias:
        all_params = [p for _, p, _ in _named_parameters_with_owner(model)]
        groups = [{"params": all_params, "weight_decay": weight_decay, "group": "all"}]
    else:
        decay, no_decay = split_decay_groups(model)
        groups = [
            {"params": decay, "weight_decay": weight_decay, "group": "decay"},
            {"params": no_decay, "weight_decay": 0.0, "group": "no_decay"},
        ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError(f"{type(model).__name__} has no parameters to optimize")
    return entry.builder(groups, knobs, float(lr), float(weight_decay))
