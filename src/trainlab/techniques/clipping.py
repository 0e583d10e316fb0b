"""Gradient clipping: `clip_norm` (global norm), `clip_value` (each entry), `agc` (adaptive).

Method card
    What: before each optimizer step, `clip_norm` rescales all gradients together so
    their global L2 norm is at most `max_norm` (direction kept); `clip_value` clamps each
    gradient entry to ±`value`; `agc` (Brock et al. 2021, NFNets) rescales each unit's
    gradient whose norm exceeds `clipping · max(‖w_unit‖, eps)` — the limit scales with
    the weights, so it suits layers of very different sizes.
    When: exploding gradients (RNNs, deep nets without normalization, high learning
    rates, the doctor's EXPLODING_GRADIENTS); `clip_norm` 1.0 is the usual first try.
    `clip_value` changes the gradient's direction — prefer `clip_norm`.
    Parameters: `clip_norm.max_norm` (1.0), `clip_norm.norm_type` (2.0);
    `clip_value.value` (1.0); `agc.clipping` (0.01), `agc.eps` (1e-3), `agc.exclude`
    (name patterns left unclipped; NFNets exclude the final classifier).
    The pre-clipping global norm of each step is kept in `state.extras["grad_norm"]`.
    Conflicts: none. Runs after gradient accumulation, SAM and penalties.
"""

from __future__ import annotations

import fnmatch

import torch
from pydantic import Field

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.params import StrictModel
from trainlab.techniques.common import grads_unscaled
from trainlab.techniques.registry import TECHNIQUES


@torch.no_grad()
def adaptive_clip_(params: list[torch.Tensor], clipping: float = 0.01, eps: float = 1e-3) -> None:
    """AGC in place: per unit (slice along dim 0), cap ‖g‖ at clipping · max(‖w‖, eps)."""
    for p in params:
        if p.grad is None:
            continue
        if p.ndim > 1:
            dims = tuple(range(1, p.ndim))
            w_norm = torch.linalg.vector_norm(p.detach(), dim=dims, keepdim=True)
            g_norm = torch.linalg.vector_norm(p.grad, dim=dims, keepdim=True)
        else:  # biases and scales: the whole vector is one unit
            w_norm, g_norm = p.detach().norm(), p.grad.norm()
        limit = clipping * w_norm.clamp_min(eps)
        p.grad.mul_(torch.where(g_norm > limit, limit / g_norm.clamp_min(1e-6), 1.0))


def _trainable(state: State) -> list[torch.Tensor]:
    return [p for p in state.model.parameters() if p.grad is not None]


class ClipNormParams(StrictModel):
    """Parameters of `clip_norm`."""

    max_norm: float = Field(1.0, gt=0)
    norm_type: float = Field(2.0, gt=0)


@TECHNIQUES.register(
    "clip_norm",
    description="clip the global gradient norm before each step; max_norm",
    params=ClipNormParams,
)
class ClipNorm(Technique):
    """Rescales gradients to a maximum global norm before each step."""

    order = Slot.CLIP

    def __init__(self, params: ClipNormParams) -> None:
        self.params = params

    def on_before_step(self, state: State) -> None:
        grads_unscaled(state)
        norm = torch.nn.utils.clip_grad_norm_(
            _trainable(state), self.params.max_norm, self.params.norm_type, foreach=True
        )
        state.extras["grad_norm"] = norm


class ClipValueParams(StrictModel):
    """Parameters of `clip_value`."""

    value: float = Field(1.0, gt=0)


@TECHNIQUES.register(
    "clip_value",
    description="clamp every gradient entry to [-value, value]",
    params=ClipValueParams,
)
class ClipValue(Technique):
    """Clamps every gradient entry to ±value before each step."""

    order = Slot.CLIP

    def __init__(self, params: ClipValueParams) -> None:
        self.params = params

    def on_before_step(self, state: State) -> None:
        grads_unscaled(state)
        torch.nn.utils.clip_grad_value_(_trainable(state), self.params.value, foreach=True)


class AGCParams(StrictModel):
    """Parameters of `agc`."""

    clipping: float = Field(0.01, gt=0)
    eps: float = Field(1e-3, gt=0)
    exclude: list[str] = []


@TECHNIQUES.register(
    "agc",
    description="adaptive gradient clipping relative to each unit's weight norm; clipping",
    params=AGCParams,
)
class AGC(Technique):
    """Adaptive gradient clipping, unit by unit, before each step."""

    order = Slot.CLIP

    def __init__(self, params: AGCParams) -> None:
        self.params = params

    def on_before_step(self, state: State) -> None:
        grads_unscaled(state)
        chosen = [
            p
            for n, p in state.model.named_parameters()
            if p.grad is not None
            and not any(fnmatch.fnmatchcase(n, pat) for pat in self.params.exclude)
        ]
        adaptive_clip_(chosen, self.params.clipping, self.params.eps)
