"""`dropout`: set — and optionally schedule — the rate of the model's dropout layers.

Method card
    What: overrides `p` of every dropout layer in the model (the layers `model.dropout`
    creates); with `end_rate` the rate moves linearly from `rate` at the first epoch to
    `end_rate` at the last (e.g. 0 → 0.3 "late dropout", or 0.3 → 0 "early dropout",
    Liu et al. 2023).
    When: the model over-fits (train loss far below validation loss). The layers must
    exist: build the model with `model.dropout > 0`; this technique only changes rates.
    Parameters: `rate` (default 0.5), `end_rate` (default none = constant).
    Conflicts: none.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.registry import TECHNIQUES


def scheduled_rate(rate: float, end_rate: float | None, epoch: int, epochs: int) -> float:
    """The dropout rate of `epoch` (0-based) under a linear schedule over `epochs`."""
    if end_rate is None or epochs <= 1:
        return rate
    return rate + (end_rate - rate) * epoch / (epochs - 1)


def set_dropout_rate(model: nn.Module, rate: float) -> int:
    """Set `p` of every dropout layer; return how many layers were changed."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m in layers:
        m.p = rate
    return len(layers)


class DropoutParams(StrictModel):
    """Parameters of `dropout`."""

    rate: float = Field(0.5, ge=0, lt=1)
    end_rate: float | None = Field(None, ge=0, lt=1)


@TECHNIQUES.register(
    "dropout",
    description="override (and linearly schedule) the rate of the model's dropout layers",
    params=DropoutParams,
)
class Dropout(Technique):
    """Sets the dropout rate at the start of every epoch."""

    def __init__(self, params: DropoutParams) -> None:
        self.params = params
        self.rate = params.rate

    def on_epoch_start(self, state: State) -> None:
        p = self.params
        rate = scheduled_rate(p.rate, p.end_rate, state.epoch, state.max_epochs)
        if set_dropout_rate(state.model, rate) == 0:
            raise RecipeError(
                "techniques.dropout: the model has no dropout layers; set model.dropout > 0 "
                "so they are built, then this technique controls their rate"
            )
        self.rate = rate

    def on_epoch_end(self, state: State) -> None:
        state.epoch_metrics["dropout_rate"] = self.rate  # the row of the epoch just trained
