"""`l2`: a coupled L2 penalty, `strength · Σw²` in the loss, seen by the optimizer.

Method card
    What: the gradient `2·strength·w` is added to the selected weights' gradients before
    the optimizer step, exactly as if `strength · Σw²` were part of the loss (Keras'
    `kernel_regularizer=l2(strength)`, the seeds' spelling).
    Coupled vs decoupled: with plain SGD this equals `train.weight_decay = 2·strength`.
    With adaptive optimizers (Adam, RMSprop) the coupled penalty is divided by the
    per-weight gradient scale, so heavily-updated weights are barely regularized;
    decoupled weight decay (`train.optimizer: adamw` with `train.weight_decay`) shrinks
    every weight at the same rate and is usually better there (Loshchilov & Hutter 2019).
    Use `l2` to reproduce Keras code or to regularize only some layers with SGD.
    Parameters: `strength` (default 1e-4), `layers` (name patterns; default ≥2-D weights).
    Conflicts: none; stacks with `train.weight_decay` (both apply).
"""

from __future__ import annotations

import torch
from pydantic import Field

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.techniques.common import LayerSelection, grads_unscaled, select_parameters
from trainlab.techniques.registry import TECHNIQUES


@torch.no_grad()
def add_l2_gradient(params: list[torch.Tensor], strength: float) -> None:
    """Add the penalty's gradient `2 · strength · w` to each parameter's `.grad`."""
    for p in params:
        if p.grad is not None:
            p.grad.add_(p, alpha=2.0 * strength)


class L2Params(LayerSelection):
    """Parameters of `l2`."""

    strength: float = Field(1e-4, gt=0)


@TECHNIQUES.register(
    "l2",
    description="coupled L2 weight penalty in the loss (Keras l2); strength, layers",
    params=L2Params,
)
class L2(Technique):
    """Adds the L2 penalty's gradient to the selected weights before every step."""

    order = Slot.PENALTY

    def __init__(self, params: L2Params) -> None:
        self.params = params
        self.weights: list[torch.Tensor] = []

    def on_fit_start(self, state: State) -> None:
        self.weights = [p for _, p in select_parameters(state.model, self.params.layers, "l2")]

    def on_before_step(self, state: State) -> None:
        grads_unscaled(state)
        add_l2_gradient(self.weights, self.params.strength)
