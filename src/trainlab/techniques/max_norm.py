"""`max_norm`: after every step, cap the norm of each unit's incoming weights at `c`.

Method card
    What: each output unit's incoming weight vector (a row of a linear layer, one filter
    of a convolution) is rescaled to norm `max_norm` whenever it grows beyond it
    (Srivastava et al. 2014; Keras' `MaxNorm`).
    When: with dropout and large learning rates — the cap keeps weights from blowing up,
    so higher rates stay stable. Suggested `max_norm` 3–4.
    Parameters: `max_norm` (default 3.0), `layers` (name patterns; default ≥2-D weights).
    Conflicts: none.
"""

from __future__ import annotations

import torch
from pydantic import Field

from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.techniques.common import LayerSelection, select_parameters
from trainlab.techniques.registry import TECHNIQUES


@torch.no_grad()
def apply_max_norm(weights: list[torch.Tensor], max_norm: float) -> None:
    """Rescale, in place, every unit (slice along dim 0) whose L2 norm exceeds `max_norm`."""
    for w in weights:
        w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=max_norm))


def unit_norms(w: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each unit's incoming weights (one value per slice along dim 0)."""
    return w.detach().reshape(w.shape[0], -1).norm(dim=1)


class MaxNormParams(LayerSelection):
    """Parameters of `max_norm`."""

    max_norm: float = Field(3.0, gt=0)


@TECHNIQUES.register(
    "max_norm",
    description="cap each unit's incoming weight norm after every step; max_norm, layers",
    params=MaxNormParams,
)
class MaxNorm(Technique):
    """Applies the max-norm constraint after every optimizer step."""

    def __init__(self, params: MaxNormParams) -> None:
        self.params = params
        self.weights: list[torch.Tensor] = []

    def on_fit_start(self, state: State) -> None:
        chosen = select_parameters(state.model, self.params.layers, "max_norm")
        self.weights = [p for _, p in chosen if p.ndim >= 2]

    def on_after_step(self, state: State) -> None:
        apply_max_norm(self.weights, self.params.max_norm)
