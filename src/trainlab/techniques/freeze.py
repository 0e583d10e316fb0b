"""`freeze`: keep the layers whose names match a pattern fixed, for some epochs or all.

Method card
    What: parameters matching `layers` get `requires_grad = False` (no gradient, no
    optimizer update, no weight decay) until epoch `epochs`, then are released. The
    transfer-learning recipe of the seeds: train a new head on a frozen backbone, then
    unfreeze and fine-tune with a lower learning rate.
    When: reusing a trained backbone (`model.init_from`), or stabilising the first
    epochs of a fine-tune. Batch-norm statistics of frozen layers still update in
    training mode.
    Parameters: `layers` (name patterns, required, e.g. `["stem.*", "layer1.*"]`),
    `epochs` (frozen for this many epochs; none = the whole fit).
    Conflicts: none.
"""

from __future__ import annotations

from pydantic import Field

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.common import select_parameters
from trainlab.techniques.registry import TECHNIQUES


def set_frozen(params: list, frozen: bool) -> None:
    """Freeze (or release) parameters; frozen ones also lose any stale gradient."""
    for p in params:
        p.requires_grad_(not frozen)
        if frozen:
            p.grad = None


class FreezeParams(StrictModel):
    """Parameters of `freeze`."""

    layers: list[str] = Field(min_length=1)
    epochs: int | None = Field(None, ge=1)


@TECHNIQUES.register(
    "freeze",
    description="freeze parameters matching name patterns, for N epochs or the whole fit",
    params=FreezeParams,
)
class Freeze(Technique):
    """Sets requires_grad of the matched parameters at the start of every epoch."""

    order = Slot.FREEZE

    def __init__(self, params: FreezeParams) -> None:
        self.params = params
        self.chosen: list = []

    def on_fit_start(self, state: State) -> None:
        self.chosen = [p for _, p in select_parameters(state.model, self.params.layers, "freeze")]
        if len(self.chosen) == len(list(state.model.parameters())):
            raise RecipeError(
                f"techniques.freeze.layers: {self.params.layers} matches every parameter, so "
                "nothing would train; leave the new head (or some layers) out of the patterns"
            )

    def on_epoch_start(self, state: State) -> None:
        until = self.params.epochs
        set_frozen(self.chosen, until is None or state.epoch < until)

    def on_fit_end(self, state: State) -> None:
        set_frozen(self.chosen, False)
