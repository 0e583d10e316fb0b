"""`l1`: an L1 penalty on the weights, which drives many of them to exactly zero.

Method card
    What: adds `strength · Σ|w|` to the loss for the selected weights; implemented as its
    gradient `strength · sign(w)` added before the optimizer step (the same update as
    putting the term in the loss, without building a graph over every weight).
    When: sparse models (many irrelevant inputs, later magnitude pruning); rarely the best
    plain regularizer for accuracy — prefer `l2` / weight decay for that.
    Parameters: `strength` (default 1e-5; Keras' `l1(0.01)` is the seeds' example, much too
    strong for wide layers), `layers` (name patterns; default every ≥2-D weight).
    Conflicts: none. With gradient accumulation the penalty is added once per step.
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
def add_l1_gradient(params: list[torch.Tensor], strength: float) -> None:
    """Add the penalty's (sub)gradient `strength · sign(w)` to each parameter's `.grad`."""
    for p in params:
        if p.grad is not None:
            p.grad.add_(torch.sign(p), alpha=strength)


class L1Params(LayerSelection):
    """Parameters of `l1`."""

    strength: float = Field(1e-5, gt=0)


@TECHNIQUES.register(
    "l1",
    description="L1 weight penalty (sparse weights); strength, layers",
    params=L1Params,
)
class L1(Technique):
    """Adds the L1 penalty's gradient to the selected weights before every step."""

    order = Slot.PENALTY

    def __init__(self, params: L1Params) -> None:
        self.params = params
        self.weights: list[torch.Tensor] = []

    def on_fit_start(self, state: State) -> None:
        self.weights = [p for _, p in select_parameters(state.model, self.params.layers, "l1")]

    def on_before_step(self, state: State) -> None:
        grads_unscaled(state)
        add_l1_gradient(self.weights, self.params.strength)
