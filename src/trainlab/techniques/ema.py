"""`ema`: keep an exponential moving average of the weights; evaluate and ship it.

Method card
    What: after every optimizer step, `avg ← d·avg + (1−d)·w` for every floating-point
    parameter and buffer (batch-norm statistics included). Validation, test and the
    saved model use the averaged weights; training continues on the raw ones. With
    `warmup` the decay starts small, `d_t = min(decay, (1+t)/(10+t))` (TensorFlow's
    `num_updates`), so early averages are not dominated by the random initialisation.
    When: noisy training (small batches, high learning rates); a free +0.1–1 point of
    accuracy in many image models. Needs enough steps: ~1/(1−decay) steps to forget.
    Parameters: `decay` (0.999), `warmup` (true), `every` (update every N steps, 1).
    Conflicts: `swa` (both replace the evaluated weights; pick one), `precise_bn` (the
    averaged weights carry their own batch-norm statistics).
    Resume: the average and its step count are saved in every checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.params import StrictModel
from trainlab.techniques.common import (
    as_tensors,
    final_weights_locked,
    float_state,
    swap_in,
)
from trainlab.techniques.registry import TECHNIQUES


def ema_decay(decay: float, updates: int, warmup: bool) -> float:
    """The decay used for update number `updates` (0-based)."""
    return min(decay, (1.0 + updates) / (10.0 + updates)) if warmup else decay


@torch.no_grad()
def ema_update(
    average: dict[str, torch.Tensor], current: dict[str, torch.Tensor], decay: float
) -> None:
    """In place: `average[k] ← decay·average[k] + (1−decay)·current[k]` for every key."""
    keys = list(average)
    torch._foreach_lerp_([average[k] for k in keys], [current[k] for k in keys], 1.0 - decay)


class EMAParams(StrictModel):
    """Parameters of `ema`."""

    decay: float = Field(0.999, gt=0, lt=1)
    warmup: bool = True
    every: int = Field(1, ge=1)


@TECHNIQUES.register(
    "ema",
    description="exponential moving average of the weights, used for evaluation; decay",
    params=EMAParams,
    conflicts=["swa", "precise_bn"],
)
class EMA(Technique):
    """Maintains the averaged weights and swaps them in around every evaluation."""

    order = Slot.AVERAGE

    def __init__(self, params: EMAParams) -> None:
        self.params = params
        self.average: dict[str, torch.Tensor] | None = None
        self.updates = 0
        self._live: dict[str, torch.Tensor] | None = None
        self._tracked: dict[str, torch.Tensor] = {}

    def on_fit_start(self, state: State) -> None:
        self.on_epoch_start(state)
        if self.average is None:
            self.average = float_state(state.model)
        else:  # resumed: keep the average on the model's device
            self.average = {k: v.to(self._tracked[k].device) for k, v in self.average.items()}

    def on_epoch_start(self, state: State) -> None:
        # Views of the live tensors; re-taken each epoch in case a technique (channels_last)
        # replaced their storage.
        live = state.model.state_dict()
        self._tracked = {k: v for k, v in live.items() if v.is_floating_point()}

    def on_after_step(self, state: State) -> None:
        if state.step % self.params.every:
            return
        p = self.params
        ema_update(self.average, self._tracked, ema_decay(p.decay, self.updates, p.warmup))
        self.updates += 1

    def on_eval_start(self, state: State) -> None:
        if not final_weights_locked(state):
            self._live = swap_in(state.model, self.average)

    def on_eval_end(self, state: State) -> None:
        if self._live is not None:
            swap_in(state.model, self._live)
            self._live = None

    def on_fit_end(self, state: State) -> None:
        if not final_weights_locked(state):
            swap_in(state.model, self.average)

    def state_dict(self) -> dict[str, Any]:
        return {"average": as_tensors(self.average or {}), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average = dict(state["average"]) or None
        self.updates = int(state["updates"])
