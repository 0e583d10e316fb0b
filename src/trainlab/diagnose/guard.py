"""Divergence guard: stop on a non-finite loss or gradient with the per-layer norms, or roll back.

Method card
    What: checks the loss (after it is computed) and the gradients (after backward) of
    every step. On a non-finite value it either stops the fit (`action: stop`, the
    default) with `non_finite_loss` / `non_finite_gradient` and a message naming the
    layers whose norms are largest or non-finite, or (`action: rollback`, opt-in)
    reloads the last good checkpoint (the last finished epoch; the weights at the start
    of the fit if none finished), multiplies the learning rate by `lr_factor` (0.5) and
    carries on, at most `max_rollbacks` times before stopping. Each roll-back is logged
    in `diagnostics/divergence.json`.
    When: any run that may diverge (high learning rate, no normalization, fp16); the
    roll-back saves a long run from one bad step. The engine already stops on a
    non-finite loss; the guard adds gradients, the per-layer evidence and the roll-back.
    Cost: one fused norm over all gradients per step.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import torch
from pydantic import Field

from trainlab.diagnose.common import diagnostics_dir, layer_norms
from trainlab.engine.events import StopFit, StopReason
from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.fileio import write_json
from trainlab.params import StrictModel
from trainlab.techniques.registry import TECHNIQUES


class DivergenceGuardParams(StrictModel):
    """Parameters of `divergence_guard`."""

    action: Literal["stop", "rollback"] = "stop"
    lr_factor: float = Field(0.5, gt=0, lt=1)
    max_rollbacks: int = Field(3, ge=0)


def describe_norms(norms: dict[str, dict[str, float | None]], limit: int = 4) -> str:
    """'layer: grad 3.1e+04, weight 12' for the non-finite or largest-gradient layers."""

    def badness(item: tuple[str, dict]) -> float:
        g, w = item[1]["grad_norm"], item[1]["weight_norm"]
        if (g is not None and not math.isfinite(g)) or not math.isfinite(w):
            return math.inf
        return g if g is not None else -1.0

    ranked = sorted(norms.items(), key=badness, reverse=True)[:limit]
    parts = []
    for name, n in ranked:
        g = "none" if n["grad_norm"] is None else f"{n['grad_norm']:.3g}"
        parts.append(f"{name}: grad {g}, weight {n['weight_norm']:.3g}")
    return "; ".join(parts)


@TECHNIQUES.register(
    "divergence_guard",
    description="stop on a non-finite loss or gradient with per-layer norms, or roll back "
    "to the last good checkpoint and halve the lr; action",
    params=DivergenceGuardParams,
)
class DivergenceGuard(Technique):
    """Stops (or rolls back and lowers the lr) on a non-finite loss or gradient."""

    order = Slot.GUARD

    def __init__(self, params: DivergenceGuardParams | None = None) -> None:
        self.params = params or DivergenceGuardParams()
        self.rollbacks = 0
        self.events: list[dict[str, Any]] = []
        self._start: dict[str, Any] | None = None

    def on_fit_start(self, state: State) -> None:
        if self.params.action == "rollback":
            self._start = {
                "model": {k: v.detach().clone() for k, v in state.model.state_dict().items()},
                "optimizer": _clone(state.optimizer.state_dict()),
            }

    def on_after_loss(self, state: State) -> None:
        if state.loss is not None and not torch.isfinite(state.loss.detach()).all():
            where = (
                f"epoch {state.epoch + 1}, batch {state.batch_index + 1} (step {state.step + 1})"
            )
            value = float(state.loss.detach().float().sum())
            self._fail(state, StopReason.NON_FINITE_LOSS, f"loss became {value} at {where}")

    def on_after_backward(self, state: State) -> None:
        if state.grad_scaler is not None:
            return  # fp16 loss scaling expects and skips non-finite gradients itself
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        if not grads:
            return
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        if not torch.isfinite(total):
            where = (
                f"epoch {state.epoch + 1}, batch {state.batch_index + 1} (step {state.step + 1})"
            )
            self._fail(state, StopReason.NON_FINITE_GRADIENT, f"gradient became {total} at {where}")

    def _fail(self, state: State, reason: StopReason, what: str) -> None:
        norms = describe_norms(layer_norms(state.model))
        message = f"{what}; per-layer norms: {norms}"
        self.events.append({"reason": reason.value, "message": message, "step": state.step})
        state.extras["divergence_events"] = self.events
        if self.params.action == "stop" or self.rollbacks >= self.params.max_rollbacks:
            if self.rollbacks:
                message += f" (after {self.rollbacks} roll-backs)"
            raise StopFit(reason, message)
        self._rollback(state)
        # The step that produced the non-finite value must not happen: a zero loss on the
        # restored weights keeps the engine's own checks quiet and skip_step drops it.
        state.loss = sum(p.sum() * 0.0 for p in state.model.parameters())
        for p in state.model.parameters():
            p.grad = None
        state.skip_step = True

    @torch.no_grad()
    def _rollback(self, state: State) -> None:

        from trainlab.engine.checkpoint import CheckpointStore, load_weights

        lr_before = [g["lr"] for g in state.optimizer.param_groups]
        run_dir = state.run_dir
        latest = CheckpointStore(run_dir / "checkpoints").latest() if run_dir else None
        if latest is not None:
            load_weights(state.model, latest / "model.safetensors", state.device)
            saved = CheckpointStore(latest.parent).load_state(latest)
            state.optimizer.load_state_dict(saved["optimizer"])
            source = latest.name
        else:
            assert self._start is not None
            state.model.load_state_dict(self._start["model"])
            state.optimizer.load_state_dict(_clone(self._start["optimizer"]))
            source = "the start of the fit"
        self.rollbacks += 1
        f = self.params.lr_factor
        if state.schedule is not None and hasattr(state.schedule, "base_lrs"):
            state.schedule.base_lrs = [b * f for b in state.schedule.base_lrs]
            factor = state.schedule.factor
            for group, base in zip(
                state.optimizer.param_groups, state.schedule.base_lrs, strict=True
            ):
                group["lr"] = base * factor
        else:
            for group, lr in zip(state.optimizer.param_groups, lr_before, strict=True):
                group["lr"] = lr * f
        self.events[-1].update(rolled_back_to=source, lr=state.optimizer.param_groups[0]["lr"])
        folder = diagnostics_dir(state)
        if folder is not None:
            write_json(folder / "divergence.json", {"events": self.events})

    def state_dict(self) -> dict[str, Any]:
        return {"rollbacks": self.rollbacks, "events": json.dumps(self.events)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rollbacks = int(state.get("rollbacks", 0))
        self.events = json.loads(state.get("events", "[]"))


def _where(state: State) -> str:
    return f"epoch {state.epoch + 1}, batch {state.batch_index + 1} (step {state.step + 1})"


def _clone(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj
