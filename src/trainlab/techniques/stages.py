"""`stages`: fine-tune in phases — what is frozen and the learning rates, stage by stage.

Method card
    What: the seeds' two-phase transfer recipe (seed 003 §3.1.5, §4.3) in one recipe:
    each stage runs for its `epochs` with its own frozen parts and its own learning-rate
    factor (times the recipe's rate and whatever the schedule does at that step).
    - `freeze:` parts such as `backbone`, `head`, `block3`, module names or patterns;
      empty = everything trains.
    - `unfreeze:` what trains of the frozen parts: `last 2 blocks`, or parts and names
      (`[block4]`); with no `freeze`, the backbone is what it unfreezes from (Keras'
      "freeze all but the last layers").
    - `lr:` a factor, or a range `[lo, hi]`: discriminative rates, fastai's
      `slice(lo, hi)` — the first block at `lo`, the head at `hi`, the blocks between
      spaced geometrically (one optimizer param group per part).
    The last stage may leave `epochs` out: it runs to the end of the fit. E.g. a new
    head on a frozen backbone at the full rate, then everything, the early blocks at a
    hundredth and the head at a tenth: `stages: [{epochs: 5, freeze: [backbone]},
    {lr: [0.01, 0.1]}]` — fastai's `fine_tune` shape.
    Batch norm of frozen parts stays in training mode (its statistics follow the new
    data) unless `frozen_bn: eval`, which keeps the source's statistics.
    When: a model started from another's weights (`model.init_from`), where the new head
    must settle before its gradients reach the backbone.
    Resume: the stage is a function of the epoch, and the original learning rates are
    part of the checkpoint state, so a killed run resumes in the right stage.
    `schedule: stage` runs the recipe's schedule anew within each stage (one cycle per
    phase) instead of once over the fit. `preset: fine_tune` writes fastai's
    `fine_tune`: `freeze_epochs` (1) on a frozen backbone at the recipe's rate, then
    everything at half of it with the first block `lr_mult` (100) times slower than
    the head, the schedule anew in each.
    Conflicts: `freeze` (both decide what trains).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from torch import nn

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.freeze import chosen_parameters, set_frozen
from trainlab.techniques.registry import TECHNIQUES
from trainlab.transfer.groups import layer_groups, resolve_layers

_LAST_BLOCKS = re.compile(r"^last (\d+) blocks?$")


class Stage(StrictModel):
    """One phase: how long, what is frozen, the learning-rate factor (or range)."""

    epochs: int | None = Field(None, ge=1)
    freeze: list[str] = []
    unfreeze: str | list[str] = []
    lr: float | tuple[float, float] = 1.0

    @field_validator("lr")
    @classmethod
    def _check_lr(cls, value: float | tuple[float, float]) -> float | tuple[float, float]:
        rates = value if isinstance(value, tuple) else (value,)
        if not all(0 < r <= 1e3 for r in rates):
            raise ValueError(f"lr factors must be in (0, 1000] (got {value})")
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError(f"lr range [lo, hi] needs lo <= hi (got {list(value)})")
        return value

    @field_validator("unfreeze")
    @classmethod
    def _check_unfreeze(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and not _LAST_BLOCKS.match(value):
            raise ValueError(
                f"unfreeze: '{value}' is not 'last N blocks'; give that, or a list of parts "
                "and layer names such as [block4]"
            )
        return value


class StagesParams(StrictModel):
    """Parameters of `stages`: the stages, or the `fine_tune` preset that writes them."""

    stages: list[Stage] = []
    #: fine_tune: fastai's `fine_tune` — `freeze_epochs` on a frozen backbone, then
    #: everything at half the rate, the first block `lr_mult` times slower than the head
    preset: Literal["fine_tune"] | None = None
    freeze_epochs: int = Field(1, ge=1)
    lr_mult: float = Field(100.0, ge=1, le=1e6)
    #: fit: the recipe's schedule spans the whole fit; stage: it runs anew in each stage
    #: (fine_tune's default: one cycle per phase)
    schedule: Literal["fit", "stage"] | None = None
    frozen_bn: Literal["train", "eval"] = "train"

    @model_validator(mode="before")
    @classmethod
    def _resolve_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset, stages = data.get("preset"), data.get("stages")
        if preset is None and not stages:
            raise ValueError("give stages: [...] or preset: fine_tune")
        data = dict(data)
        if preset == "fine_tune":
            written = _fine_tune_stages(data.get("freeze_epochs", 1), data.get("lr_mult", 100.0))
            # a saved recipe holds the stages the preset wrote: those are fine
            if stages and [Stage.model_validate(s) for s in stages] != written:
                raise ValueError("give stages or preset, not both (the preset writes them)")
            data["stages"] = written
        if data.get("schedule") is None:
            data["schedule"] = "stage" if preset == "fine_tune" else "fit"
        return data


def _fine_tune_stages(freeze_epochs: Any, lr_mult: Any) -> list[Stage]:
    """fastai's `fine_tune`: a frozen backbone, then everything at half the rate with the
    first block `lr_mult` times slower than the head."""
    try:
        epochs, mult = int(freeze_epochs), float(lr_mult)
    except (TypeError, ValueError):
        raise ValueError("freeze_epochs must be a whole number and lr_mult a number") from None
    if epochs < 1 or mult < 1:
        raise ValueError("fine_tune needs freeze_epochs >= 1 and lr_mult >= 1")
    return [Stage(epochs=epochs, freeze=["backbone"]), Stage(lr=(0.5 / mult, 0.5))]


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
        self.frozen = [_frozen_in(state.model, s) for s in stages]
        if any(isinstance(s.lr, tuple) for s in stages) and not any(
            "part" in g for g in state.optimizer.param_groups
        ):
            raise RecipeError(
                "techniques.stages: a learning-rate range needs one optimizer param group "
                "per part, and this fit's optimizer was built without them"
            )
        for i, params in enumerate(self.frozen):
            if len(params) == every:
                raise RecipeError(
                    f"techniques.stages: stage {i + 1} freezes every parameter, so nothing "
                    "would train; leave the head out of its freeze list"
                )
        if self.base_lrs is None and state.schedule is not None:
            self.base_lrs = list(state.schedule.base_lrs)

    def optimizer_parts(self, model: nn.Module) -> list[tuple[str, list[nn.Parameter]]] | None:
        """With a learning-rate range in some stage: block1 … blockN then the head, each
        one param group, so each part can have its own rate."""
        if not any(isinstance(s.lr, tuple) for s in self.params.stages):
            return None
        return model_parts(model)

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
            factors = group_factors(state.optimizer.param_groups, self.params.stages[current].lr)
            _set_lr_factors(state, self.base_lrs, factors)
            if self.params.schedule == "stage" and state.epoch == self._starts()[current]:
                self._restart_schedule(state, current)

    def _restart_schedule(self, state: State, current: int) -> None:
        """The recipe's schedule anew over stage `current` (its epochs, or the rest)."""
        schedule = state.schedule
        per_epoch = 1 if schedule.interval == "epoch" else schedule.total // state.max_epochs
        epochs = self.params.stages[current].epochs or state.max_epochs - state.epoch
        schedule.restart(epochs * per_epoch)

    def on_fit_end(self, state: State) -> None:
        """Leave the model fully trainable for whoever uses it next."""
        for params in self.frozen:
            set_frozen(params, False)

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": list(self.base_lrs or [])}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lrs = [float(x) for x in state["base_lrs"]] or None


def model_parts(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The model's blocks in forward order and then its head, each with its parameters
    (`transfer.groups` names them); parts holding no parameter are left out."""
    params = dict(model.named_parameters())
    parts = []
    for name in [*_blocks(model), "head"]:
        chosen = resolve_layers(model, [name], params)[name]
        if chosen:
            parts.append((name, [params[k] for k in chosen]))
    return parts


def group_factors(groups: list[dict[str, Any]], lr: float | tuple[float, float]) -> list[float]:
    """Each param group's learning-rate factor: `lr` for all, or for a range [lo, hi] the
    first part at lo, the last (the head) at hi and the parts between spaced evenly on a
    log scale (fastai's `even_mults`); a group in no named part ("rest") at hi."""
    if not isinstance(lr, tuple):
        return [lr] * len(groups)
    lo, hi = lr
    order = list(dict.fromkeys(g["part"] for g in groups if g.get("part", "rest") != "rest"))
    if len(order) == 1:
        at = {order[0]: hi}
    else:
        at = {part: lo * (hi / lo) ** (i / (len(order) - 1)) for i, part in enumerate(order)}
    return [at.get(g.get("part", "rest"), hi) for g in groups]


def _frozen_in(model: nn.Module, stage: Stage) -> list[nn.Parameter]:
    """The parameters a stage freezes: its `freeze` parts (the backbone when it only says
    what to unfreeze) less those its `unfreeze` names."""
    freeze = stage.freeze or (["backbone"] if stage.unfreeze else [])
    if not freeze:
        return []
    frozen = chosen_parameters(model, freeze)
    released = {id(p) for p in chosen_parameters(model, _unfreeze_names(model, stage.unfreeze))}
    return [p for p in frozen if id(p) not in released]


def _unfreeze_names(model: nn.Module, unfreeze: str | list[str]) -> list[str]:
    """`last N blocks` → the names of the model's last N blocks; a list as it is."""
    if not isinstance(unfreeze, str):
        return list(unfreeze)
    n = int(_LAST_BLOCKS.match(unfreeze).group(1))
    blocks = _blocks(model)
    if n > len(blocks):
        raise RecipeError(
            f"techniques.stages.unfreeze: 'last {n} blocks', but the model has "
            f"{len(blocks)} blocks ({', '.join(blocks)}); `trainlab models --layers` lists them"
        )
    return blocks[len(blocks) - n :]


def _blocks(model: nn.Module) -> list[str]:
    """The model's block names (`block1`, `block2`, …) in forward order."""
    names = (name for name in layer_groups(model) if name.startswith("block"))
    return sorted(names, key=lambda name: int(name[5:]))


def _set_lr_factors(state: State, originals: list[float], factors: list[float]) -> None:
    """The schedule's base rates at each group's factor × the recipe's, and the live rates
    with them (so the stage's first step already runs at its rates)."""
    schedule = state.schedule
    new = [lr * f for lr, f in zip(originals, factors, strict=True)]
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
