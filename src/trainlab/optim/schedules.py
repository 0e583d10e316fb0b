"""Learning-rate schedules as pure functions of time, plus one stateful wrapper.

Every schedule is a multiplier of the base lr (the recipe's `train.lr`, which for
`one_cycle` is the peak lr). Non-stateful schedules are pure functions
`factor(t, total, params) -> float`, with `t` counted in units of the schedule's
`interval` ("epoch" or "step") from 0 and `total` the number of such units in the run,
so each can be checked against its closed form. `plateau` depends on the validation
metric and keeps state. `LRSchedule` applies the factor to an optimizer's param groups;
the engine calls only `step_batch()`, `step_epoch(metric)`, `state_dict()` and
`load_state_dict()`.

Conventions (shared by every schedule, fields of `ScheduleParams`):

- `t` is absolute: milestones, exponential decay and cosine all count from the start
  of the run, warm-up included; the lr of unit `t` is set before unit `t` trains, so
  the first update uses factor(0).
- Warm-up replaces the first `warmup` units by a linear ramp from
  `warmup_start_factor` towards the schedule's own value at `t = warmup`:
  factor(t) = s + (v − s)·(t + 1)/(warmup + 1) for t < warmup, with s the start factor
  and v = schedule(warmup). The ramp points sit strictly between s and v (warmup 3,
  s 0, v 1 → 0.25, 0.5, 0.75, then 1), so the default s = 0 never spends a whole unit
  — a whole epoch when the interval is "epoch" — at lr 0.
- Decaying schedules reach their floor at `t = total`, just after the last update
  (like torch's CosineAnnealingLR with T_max = total), so no unit trains at the floor
  when it is 0. `one_cycle` follows torch's OneCycleLR and ends exactly at its floor.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field, model_validator

from trainlab.errors import RecipeError, RunError
from trainlab.optim.optimizers import coerce_params
from trainlab.params import StrictModel
from trainlab.registry import Registry

__all__ = [
    "SCHEDULES",
    "ConstantParams",
    "CosineParams",
    "ExponentialParams",
    "LRSchedule",
    "LinearParams",
    "NaturalExpParams",
    "OneCycleParams",
    "PiecewiseParams",
    "PlateauParams",
    "PlateauTracker",
    "ScheduleParams",
    "build_schedule",
    "constant_factor",
    "cosine_factor",
    "exponential_factor",
    "linear_factor",
    "natural_exp_factor",
    "one_cycle_factor",
    "piecewise_factor",
    "schedule_factor",
]

FactorFn = Callable[[int, int, Any], float]

SCHEDULES: Registry[FactorFn] = Registry("schedule")

WHERE = "train.schedule"


class ScheduleParams(StrictModel):
    """Fields every schedule accepts.

    Args:
        interval: unit of `t`: "epoch" (advanced after each validation) or "step"
            (advanced after each optimizer step). `warmup` and `milestones` use it too.
        warmup: number of units of linear warm-up (0 = none).
        warmup_start_factor: the ramp's origin, as a multiple of the base lr (see module
            docstring: the first warm-up unit uses s + (v − s)/(warmup + 1)).
    """

    interval: Literal["step", "epoch"] = "epoch"
    warmup: int = Field(0, ge=0)
    warmup_start_factor: float = Field(0.0, ge=0.0, le=1.0)


class ConstantParams(ScheduleParams):
    """Constant lr (after an optional warm-up)."""


class PiecewiseParams(ScheduleParams):
    """Step-wise constant multipliers: `values[i]` applies from `milestones[i-1]` on.

    With milestones [30, 60] and values [1, 0.1, 0.01]: factor 1 for t < 30, 0.1 for
    30 ≤ t < 60, 0.01 from t = 60 (the unit numbered by a milestone already uses the new
    value, as in torch's MultiStepLR).
    """

    milestones: list[int]
    values: list[float]

    @model_validator(mode="after")
    def _check_lengths(self) -> PiecewiseParams:
        if any(m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be >= 1 (got {self.milestones})")
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            raise ValueError(f"milestones must be strictly increasing (got {self.milestones})")
        if len(self.values) != len(self.milestones) + 1:
            raise ValueError(
                f"values needs one more entry than milestones (the value before the first "
                f"milestone): got {len(self.values)} values for {len(self.milestones)} "
                "milestones"
            )
        if any(v <= 0 for v in self.values):
            raise ValueError(f"values must be > 0 (got {self.values})")
        return self


class ExponentialParams(ScheduleParams):
    """factor = gamma^t."""

    gamma: float = Field(0.95, gt=0.0, le=1.0)


class NaturalExpParams(ScheduleParams):
    """factor = e^(−k·t)."""

    k: float = Field(0.05, ge=0.0)


class LinearParams(ScheduleParams):
    """factor goes linearly from 1 at t = 0 to `end_factor` at t = total."""

    end_factor: float = Field(0.0, ge=0.0)


class CosineParams(ScheduleParams):
    """Cosine annealing from 1 at t = 0 to `min_factor` at t = total."""

    min_factor: float = Field(0.0, ge=0.0, le=1.0)


class OneCycleParams(ScheduleParams):
    """1-cycle policy: up from 1/div_factor to 1 over `pct_start` of the run, then down.

    The recipe's lr is the peak; the run ends at 1/(div_factor·final_div_factor).
    `anneal` is the shape of both phases. It warms up by itself, so `warmup` must be 0.
    """

    pct_start: float = Field(0.3, gt=0.0, lt=1.0)
    div_factor: float = Field(25.0, ge=1.0)
    final_div_factor: float = Field(1e4, ge=1.0)
    anneal: Literal["cos", "linear"] = "cos"

    @model_validator(mode="after")
    def _no_extra_warmup(self) -> OneCycleParams:
        if self.warmup:
            raise ValueError(
                "one_cycle warms up by itself over pct_start of the run; set warmup: 0"
            )
        return self


class PlateauParams(ScheduleParams):
    """Reduce on plateau: multiply by `factor` when the metric stops improving.

    A value improves on the best so far if it is lower (mode "min") or higher ("max")
    by more than `threshold`·|best|. After an improvement-less epoch the count of bad
    epochs grows; when it exceeds `patience` the multiplier becomes
    max(multiplier·factor, min_factor) and the count restarts — with patience 2 the
    first two bad epochs are tolerated and the lr drops after the third (torch's rule).
    Epochs of warm-up are ignored: a loss still falling from a small lr says nothing
    about a plateau.
    """

    factor: float = Field(0.1, gt=0.0, lt=1.0)
    patience: int = Field(10, ge=0)
    threshold: float = Field(1e-4, ge=0.0)
    mode: Literal["min", "max"] = "min"
    min_factor: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _epoch_only(self) -> PlateauParams:
        if self.interval != "epoch":
            raise ValueError(
                "plateau reacts to the validation metric once per epoch; set interval: epoch"
            )
        return self


def _clamp(t: int, total: int) -> int:
    return min(max(t, 0), total)


@SCHEDULES.register(
    "constant",
    description="constant lr (use with warmup for a warm-up-only schedule)",
    params=ConstantParams,
    stateful=False,
)
def constant_factor(t: int, total: int, params: ConstantParams) -> float:
    """Always 1."""
    return 1.0


@SCHEDULES.register(
    "piecewise",
    description="piecewise-constant multipliers changing at milestones (step decay)",
    params=PiecewiseParams,
    stateful=False,
)
def piecewise_factor(t: int, total: int, params: PiecewiseParams) -> float:
    """values[i] where i = number of milestones ≤ t."""
    return params.values[bisect.bisect_right(params.milestones, t)]


@SCHEDULES.register(
    "exponential",
    description="exponential decay lr·gamma^t",
    params=ExponentialParams,
    stateful=False,
)
def exponential_factor(t: int, total: int, params: ExponentialParams) -> float:
    """gamma^t."""
    return params.gamma ** _clamp(t, total)


@SCHEDULES.register(
    "natural_exp",
    description="natural exponential decay lr·e^(−k·t)",
    params=NaturalExpParams,
    stateful=False,
)
def natural_exp_factor(t: int, total: int, params: NaturalExpParams) -> float:
    """e^(−k·t)."""
    return math.exp(-params.k * _clamp(t, total))


@SCHEDULES.register(
    "linear",
    description="linear decay from lr to lr·end_factor over the run",
    params=LinearParams,
    stateful=False,
)
def linear_factor(t: int, total: int, params: LinearParams) -> float:
    """1 + (end_factor − 1)·t/total."""
    return 1.0 + (params.end_factor - 1.0) * _clamp(t, total) / total


@SCHEDULES.register(
    "cosine",
    description="cosine annealing from lr to lr·min_factor over the run",
    params=CosineParams,
    stateful=False,
)
def cosine_factor(t: int, total: int, params: CosineParams) -> float:
    """min + (1 − min)·(1 + cos(π·t/total))/2."""
    m = params.min_factor
    return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * _clamp(t, total) / total))


def _anneal(start: float, end: float, pct: float, shape: str) -> float:
    if shape == "linear":
        return start + (end - start) * pct
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * pct))


@SCHEDULES.register(
    "one_cycle",
    description="1-cycle policy: warm up to the recipe lr (the peak), then anneal far below",
    params=OneCycleParams,
    stateful=False,
)
def one_cycle_factor(t: int, total: int, params: OneCycleParams) -> float:
    """torch's OneCycleLR as a function of t (two phases, recipe lr = peak).

    Phase 1 anneals 1/div → 1 for t ≤ u = pct_start·total − 1; phase 2 anneals
    1 → 1/(div·final_div) for u < t ≤ total − 1.
    """
    start = 1.0 / params.div_factor
    end = start / params.final_div_factor
    t = min(max(t, 0), total - 1)
    up_end = params.pct_start * total - 1.0
    down_end = total - 1.0
    if t <= up_end and up_end > 0:
        return _anneal(start, 1.0, t / up_end, params.anneal)
    low = max(up_end, 0.0)
    pct = (t - low) / (down_end - low) if down_end > low else 1.0
    return _anneal(1.0, end, pct, params.anneal)


@SCHEDULES.register(
    "plateau",
    description="reduce lr by factor when the validation loss stops improving (per epoch)",
    params=PlateauParams,
    stateful=True,
)
def plateau_factor(t: int, total: int, params: PlateauParams) -> float:
    """1: the plateau's reductions are state, kept by `PlateauTracker`."""
    return 1.0


def schedule_factor(
    name: str, t: int, total: int, params: dict[str, Any] | BaseModel | None
) -> float:
    """The lr multiplier of schedule `name` at unit `t` of `total`, warm-up included.

    For t < warmup: s + (v − s)·(t + 1)/(warmup + 1), v = schedule(warmup); otherwise the
    schedule's own pure function. (For `plateau` this omits the metric-driven reductions.)
    """
    entry = SCHEDULES.get(name, where=WHERE)
    p = coerce_params(entry, name, params, where=WHERE)
    assert isinstance(p, ScheduleParams)
    curve = entry.builder
    if t < p.warmup:
        target = curve(p.warmup, total, p)
        s = p.warmup_start_factor
        return s + (target - s) * (t + 1) / (p.warmup + 1)
    return curve(t, total, p)


@dataclass
class PlateauTracker:
    """Reduce-on-plateau state: best metric, bad-epoch count, current multiplier."""

    params: PlateauParams
    best: float | None = None
    bad_epochs: int = 0
    multiplier: float = 1.0

    def improves(self, metric: float) -> bool:
        """Whether `metric` beats the best so far by more than threshold·|best|."""
        if self.best is None:
            return math.isfinite(metric)
        margin = self.params.threshold * abs(self.best)
        if self.params.mode == "min":
            return metric < self.best - margin
        return metric > self.best + margin

    def update(self, metric: float) -> bool:
        """Record one epoch's metric; True if the multiplier was just reduced."""
        if self.improves(metric):
            self.best = float(metric)
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.params.patience:
            self.multiplier = max(self.multiplier * self.params.factor, self.params.min_factor)
            self.bad_epochs = 0
            return True
        return False


class LRSchedule:
    """Sets every param group's lr to its base lr × the schedule's factor at time t.

    Base lrs are the groups' lrs at construction (so groups with different lrs keep
    their ratio). The factor for t = 0 is applied immediately.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, name: str, params: ScheduleParams, total: int
    ) -> None:
        if total < 1:
            raise ValueError(f"a schedule needs at least one {params.interval} (got {total})")
        if params.warmup >= total:
            raise RecipeError(
                f"{WHERE}.warmup: {params.warmup} {params.interval}s of warm-up leave nothing "
                f"of a {total}-{params.interval} run; use warmup < {total}"
            )
        self.optimizer = optimizer
        self.name = name
        self.params = params
        self.total = total
        self.t = 0
        #: a window of the run the curve spans (`restart`); (0, None): the whole run
        self.offset, self.span = 0, None
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.plateau = PlateauTracker(params) if isinstance(params, PlateauParams) else None
        self._apply()

    @property
    def interval(self) -> str:
        """'step' or 'epoch': the unit of t."""
        return self.params.interval

    @property
    def factor(self) -> float:
        """Current multiplier of the base lrs."""
        span = self.span or self.total
        f = schedule_factor(self.name, self.t - self.offset, span, self.params)
        return f * (self.plateau.multiplier if self.plateau else 1.0)

    def restart(self, length: int) -> None:
        """Run the whole curve (warm-up included) again over the next `length` units, from
        now: one schedule per stage of a staged fine-tune (fastai's `fine_tune` fits one
        cycle per phase)."""
        if self.params.warmup >= length:
            raise RecipeError(
                f"{WHERE}.warmup: {self.params.warmup} {self.params.interval}s of warm-up "
                f"leave nothing of a {length}-{self.params.interval} stage; shorten the "
                "warm-up or lengthen the stage"
            )
        self.offset, self.span = self.t, length
        self._apply()

    @property
    def lr(self) -> float:
        """Current lr of the first param group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _apply(self) -> None:
        f = self.factor
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f

    def step_batch(self) -> None:
        """Call after every optimizer step; advances t when the interval is 'step'."""
        if self.params.interval == "step":
            self.t += 1
            self._apply()

    def step_epoch(self, metric: float | None = None) -> None:
        """Call after each epoch's validation with the monitored metric (validation loss).

        Advances t when the interval is 'epoch'; `plateau` also needs `metric`.
        """
        if self.params.interval != "epoch":
            return
        if self.plateau is not None and self.t >= self.params.warmup:
            if metric is None:
                raise RecipeError(
                    f"{WHERE}: plateau needs a validation metric every epoch; add a "
                    "validation split or choose another schedule"
                )
            self.plateau.update(float(metric))
        self.t += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """Plain-python state (JSON- and `torch.load(weights_only=True)`-safe)."""
        state: dict[str, Any] = {
            "name": self.name,
            "interval": self.params.interval,
            "total": self.total,
            "t": self.t,
            "base_lrs": list(self.base_lrs),
        }
        if self.span is not None:
            state["window"] = [self.offset, self.span]
        if self.plateau is not None:
            state["best"] = self.plateau.best
            state["bad_epochs"] = self.plateau.bad_epochs
            state["multiplier"] = self.plateau.multiplier
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` and re-apply its lrs to the optimizer.

        Raises RunError when the checkpoint was made by a different schedule or run length.
        """
        for key, mine in (
            ("name", self.name),
            ("interval", self.params.interval),
            ("total", self.total),
        ):
            if state.get(key) != mine:
                raise RunError(
                    f"checkpoint schedule {key} is {state.get(key)!r} but the recipe gives "
                    f"{mine!r}; resume with the recipe the run was started with"
                )
        base_lrs = [float(x) for x in state["base_lrs"]]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise RunError(
                f"checkpoint schedule has {len(base_lrs)} param groups, the optimizer "
                f"{len(self.optimizer.param_groups)}; resume with the same recipe"
            )
        self.t = int(state["t"])
        self.base_lrs = base_lrs
        window = state.get("window")
        self.offset, self.span = (int(window[0]), int(window[1])) if window else (0, None)
        if self.plateau is not None:
            best = state.get("best")
            self.plateau.best = None if best is None else float(best)
            self.plateau.bad_epochs = int(state.get("bad_epochs", 0))
            self.plateau.multiplier = float(state.get("multiplier", 1.0))
        self._apply()

    def __repr__(self) -> str:
        return (
            f"LRSchedule({self.name!r}, t={self.t}/{self.total} {self.params.interval}s, "
            f"lr={self.lr:.6g})"
        )


def build_schedule(
    optimizer: torch.optim.Optimizer,
    name: str,
    params: dict[str, Any] | BaseModel | None,
    epochs: int,
    steps_per_epoch: int,
) -> LRSchedule:
    """Build the schedule called `name` on `optimizer` and apply its factor for t = 0.

    `total` is `epochs` for interval "epoch" and `epochs·steps_per_epoch` for "step".
    Raises RecipeError for an unknown name (did-you-mean), an invalid knob, or a warm-up
    as long as the run.
    """
    entry = SCHEDULES.get(name, where=WHERE)
    p = coerce_params(entry, name, params, where=WHERE)
    assert isinstance(p, ScheduleParams)
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(
            f"epochs and steps_per_epoch must be >= 1 (got {epochs}, {steps_per_epoch})"
        )
    total = epochs if p.interval == "epoch" else epochs * steps_per_epoch
    return LRSchedule(optimizer, name, p, total)
