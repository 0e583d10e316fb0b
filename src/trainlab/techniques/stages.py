"""`stages`: fine-tune in phases — what is frozen and the learning rate, stage by stage.

Method card
    What: the seeds' two-phase transfer recipe (seed 003 §3.1.5, §4.3) in one recipe:
    each stage runs for its `epochs` with its own frozen parts (`freeze:` parts such as
    `backbone`, `head`, `block3`, module names or patterns; empty = everything trains) and
    its own learning-rate factor (`lr`, times the recipe's rate and whatever the schedule
    does at that step). The last stage may leave `epochs` out: it runs to the end of the
    fit. E.g. a new head on a frozen backbone at the full rate, then everything at a tenth:
    `stages: [{epochs: 5, freeze: [backbone]}, {lr: 0.1}]` — fastai's `fine_tune` shape.
    Batch norm of frozen parts stays in training mode (its statistics follow the new
    data) unless `frozen_bn: eval`, which keeps the source's statistics.
    When: a model started from another's weights (`model.init_from`), where the new head
    must settle before its gradients reach the backbone.
    Resume: the stage is a function of the epoch, and the original learning rates are
    part of the checkpoint state, so a killed run resumes in the right stage.
    Not (yet): discriminative rates across blocks (fastai's `slice(lo, hi)`), one
    schedule per stage (the recipe's schedule spans the whole fit).
    Conflicts: `freeze` (both decide what trains).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from torch import nn

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.freeze import chosen_parameters, set_frozen
from trainlab.techniques.registry import TECHNIQUES


class Stage(StrictModel):
    """One phase: how long, what is frozen, the learning-rate factor."""

    epochs: int | None = Field(None, ge=1)
    freeze: list[str] = []
    lr: float = Field(1.0, gt=0, le=1e3)


class StagesParams(StrictModel):
    """Parameters of `stages`."""

    stages: list[Stage] = Field(min_length=1)
    frozen_bn: Literal["train", "eval"] = "train"


@TECHNIQUES.register(
    "stages",
    description="fine-tune in phases: per stage its epochs, frozen parts and lr factor",
    params=StagesParams,
    conflicts=["freeze"],
)
class Stages(Technique):
    """Applies the current stage's frozen set and learning-rate factor each epoch."""

    order = Slot.FREEZE

    def __init__(self, params: StagesParams) -> None:
        self.params = params
        self.frozen: list[list[nn.Parameter]] = []
        self.base_lrs: list[float] | None = None

    def on_fit_start(self, state: State) -> None:
        """Check the stages fit the run; resolve each stage's frozen parameters."""
        stages = self.params.stages
        if any(s.epochs is None for s in stages[:-1]):
            raise RecipeError("techniques.stages: only the last stage may leave out epochs")
        starts = self._starts()
        if starts[-1] >= state.max_epochs:
            raise RecipeError(
                f"techniques.stages: the last stage would start at epoch {starts[-1] + 1}, "
                f"after the fit's {state.max_epochs} epochs; shorten the stages or raise "
                "train.epochs"
            )
        every = len(list(state.model.parameters()))
        self.frozen = [chosen_parameters(state.model, s.freeze) if s.freeze else []
                       for s in stages]  # fmt: skip
        for i, params in enumerate(self.frozen):
            if len(params) == every:
                raise RecipeError(
                    f"techniques.stages: stage {i + 1} freezes every parameter, so nothing "
                    "would train; leave the head out of its freeze list"
                )
        if self.base_lrs is None and state.schedule is not None:
            self.base_lrs = list(state.schedule.base_lrs)

    def _starts(self) -> list[int]:
        """The epoch (0-based) each stage starts at."""
        starts, at = [], 0
        for stage in self.params.stages:
            starts.append(at)
            at += stage.epochs or 0
        return starts

    def stage_at(self, epoch: int) -> int:
        """The index of the stage that epoch `epoch` (0-based) belongs to."""
        return max(i for i, start in enumerate(self._starts()) if start <= epoch)

    def on_epoch_start(self, state: State) -> None:
        """Freeze this stage's parts, release the others, set its learning-rate factor."""
        current = self.stage_at(state.epoch)
        for i, params in enumerate(self.frozen):
            if i != current:
                set_frozen(params, False)
        set_frozen(self.frozen[current], True)
        if self.params.frozen_bn == "eval":
            _frozen_norms_to_eval(state.model, self.frozen[current])
        if self.base_lrs is not None:
            _set_lr_factor(state, self.base_lrs, self.params.stages[current].lr)

    def on_fit_end(self, state: State) -> None:
        """Leave the model fully trainable for whoever uses it next."""
        for params in self.frozen:
            set_frozen(params, False)

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": list(self.base_lrs or [])}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lrs = [float(x) for x in state["base_lrs"]] or None


def _set_lr_factor(state: State, originals: list[float], factor: float) -> None:
    """The schedule's base rates at `factor` × the recipe's, and the live rates with them
    (so the stage's first step already runs at its rate)."""
    schedule = state.schedule
    new = [lr * factor for lr in originals]
    for group, old, base in zip(state.optimizer.param_groups, schedule.base_lrs, new,
                                strict=True):  # fmt: skip
        group["lr"] = group["lr"] * base / old if old else base
    schedule.base_lrs = new


def _frozen_norms_to_eval(model: nn.Module, frozen: list[nn.Parameter]) -> None:
    """Batch-norm layers whose parameters are all frozen normalise with their stored
    statistics this epoch (the engine puts the model back in training mode each epoch)."""
    ids = {id(p) for p in frozen}
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and own and all(
            id(p) in ids for p in own
        ):
            module.eval()
