"""Pruners a search may name: stop bad trials early from their per-epoch validation values.

The resource is the epoch: `TrialReporter` reports each epoch's objective and stops the
fit with `StopReason.PRUNED` when the pruner says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from pydantic import Field

from trainlab.params import StrictModel
from trainlab.registry import NoParams, Registry


@dataclass
class PrunerContext:
    """What a pruner builder may need: the epoch budget of one trial."""

    max_epochs: int


PRUNERS: Registry = Registry("pruner")


class MedianParams(StrictModel):
    """Options of `median`."""

    n_startup_trials: int = Field(3, ge=0)
    n_warmup_steps: int = Field(1, ge=0)


class HalvingParams(StrictModel):
    """Options of `asha`: smallest budget (epochs) and how hard each rung cuts."""

    min_resource: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)


@PRUNERS.register("none", description="Every trial trains to the end")
def _none(p: NoParams, ctx: PrunerContext) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


@PRUNERS.register(
    "median",
    description="Stop a trial below the median of earlier trials at the same epoch",
    params=MedianParams,
)
def _median(p: MedianParams, ctx: PrunerContext) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(
        n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
    )


@PRUNERS.register(
    "asha",
    description="Asynchronous successive halving: keep the top 1/factor at each rung",
    params=HalvingParams,
)
def _asha(p: HalvingParams, ctx: PrunerContext) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=p.min_resource, reduction_factor=p.reduction_factor
    )


@PRUNERS.register(
    "hyperband",
    description="Hyperband: several successive-halving brackets with different aggressiveness",
    params=HalvingParams,
)
def _hyperband(p: HalvingParams, ctx: PrunerContext) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(
        min_resource=p.min_resource,
        max_resource=max(ctx.max_epochs, p.min_resource + 1),
        reduction_factor=p.reduction_factor,
    )


def build_pruner(
    name: str, options: dict[str, Any] | None, ctx: PrunerContext
) -> optuna.pruners.BasePruner:
    """The pruner called `name` with validated `options`; RecipeError on a bad name/option."""
    entry = PRUNERS.get(name, "--pruner")
    return entry.builder(entry.validate_params(dict(options or {}), f"pruner {name}"), ctx)
