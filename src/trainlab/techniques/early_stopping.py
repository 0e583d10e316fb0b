"""`early_stopping`: stop when the monitored metric stops improving; keep the best weights.

Method card
    What: after every validation, compares `monitor` with the best value so far; after
    `patience` epochs without an improvement larger than `min_delta` it ends the fit with
    reason `patience_exhausted`. With `restore_best` the model ends with the weights of the
    best epoch (the weights that were evaluated — the averaged ones under `ema`/`swa`),
    also when the fit runs to the last epoch, so the test metrics are those of that epoch.
    When: almost always with a generous epoch budget; it is the cheapest regularizer.
    Parameters: `monitor` (default `val_loss`; any history key such as `val_accuracy`),
    `mode` (`auto`: min for losses and errors, max otherwise), `patience` (5),
    `min_delta` (0.0), `restore_best` (true).
    Conflicts: none.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from trainlab.engine.events import StopFit, StopReason
from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.common import as_tensors, lock_final_weights
from trainlab.techniques.registry import TECHNIQUES

MINIMIZED = ("loss", "rmse", "mae", "error")


def improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    """True when `value` beats `best` by more than `min_delta` in direction `mode`."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStoppingParams(StrictModel):
    """Parameters of `early_stopping`."""

    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = Field(5, ge=0)
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = True


@TECHNIQUES.register(
    "early_stopping",
    description="stop when a metric stops improving and restore the best weights; "
    "monitor, mode, patience, min_delta",
    params=EarlyStoppingParams,
)
class EarlyStopping(Technique):
    """Tracks the monitored metric; raises StopFit(PATIENCE_EXHAUSTED) when it stalls."""

    order = Slot.EARLY_STOP

    def __init__(self, params: EarlyStoppingParams) -> None:
        self.params = params
        p = params
        self.mode = (
            p.mode
            if p.mode != "auto"
            else ("min" if any(p.monitor.endswith(s) for s in MINIMIZED) else "max")
        )
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, Any] | None = None

    def on_eval_end(self, state: State) -> None:
        key = self.params.monitor
        if key not in state.eval_metrics:
            return
        value = float(state.eval_metrics[key])
        if improved(value, self.best, self.mode, self.params.min_delta):
            self.best, self.best_epoch, self.wait = value, state.epoch + 1, 0
            if self.params.restore_best:
                self.best_weights = as_tensors(state.model.state_dict())
        else:
            self.wait += 1

    def on_epoch_end(self, state: State) -> None:
        if self.params.monitor not in state.epoch_metrics:
            raise RecipeError(
                f"techniques.early_stopping.monitor: '{self.params.monitor}' is not measured; "
                f"choose one of {', '.join(k for k in state.epoch_metrics if k != 'epoch')}"
            )
        stop = self.wait >= max(1, self.params.patience)
        last = state.epoch >= state.max_epochs
        if (stop or last) and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)
            lock_final_weights(state)
            state.final_epoch = self.best_epoch  # the run reports this epoch's metrics
        if stop:
            raise StopFit(
                StopReason.PATIENCE_EXHAUSTED,
                f"{self.params.monitor} did not improve for {self.wait} epochs; best "
                f"{self.best:.6g} at epoch {self.best_epoch}",
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.wait, self.best_weights = int(state["wait"]), state["best_weights"]
