"""`freeze`: keep named parts of the model fixed, for some epochs or all.

Method card
    What: parameters of the named parts get `requires_grad = False` (no gradient, no
    optimizer update, no weight decay) until epoch `epochs`, then are released. The
    transfer-learning recipe of the seeds: train a new head on a frozen backbone, then
    unfreeze and fine-tune with a lower learning rate.
    When: reusing a trained backbone (`model.init_from`), or stabilising the first
    epochs of a fine-tune.
    Parameters: `layers` (required): part names of `transfer.groups` (`backbone`,
    `head`, `block1`, `block2`, …, in forward order), module names (`layer1`, `0`) or
    parameter-name patterns (`["stem.*", "layer1.*"]`); `epochs` (frozen for this many
    epochs; none = the whole fit). `layers: [backbone]` trains the head alone; `[block1,
    block2]` on a four-block model keeps the last two blocks and the head trainable.
    Batch norm: only parameters are frozen. The running mean and variance of batch-norm
    layers inside frozen parts still update in training mode, so they follow the new
    data's statistics (usually what a new domain needs); keeping them as the source had
    them would take those layers' eval mode, which freeze does not set.
    Conflicts: none.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.common import select_parameters
from trainlab.techniques.registry import TECHNIQUES
from trainlab.transfer.groups import is_pattern, resolve_layers


def chosen_parameters(model: nn.Module, layers: list[str]) -> list[nn.Parameter]:
    """The parameters `layers` names: parts and module or parameter names (each must name
    something: did-you-mean otherwise), plus what the patterns match together."""
    names = [entry for entry in layers if not is_pattern(entry)]
    patterns = [entry for entry in layers if is_pattern(entry)]
    params = dict(model.named_parameters())
    chosen: set[str] = set()
    where = "techniques.freeze.layers"
    for entry, found in resolve_layers(model, names, params, where=where).items():
        if not found:
            raise RecipeError(f"{where}: '{entry}' holds no parameters; name a layer with weights")
        chosen.update(found)
    if patterns:
        chosen.update(n for n, _ in select_parameters(model, patterns, "freeze"))
    return [p for n, p in params.items() if n in chosen]


def set_frozen(params: list, frozen: bool) -> None:
    """Freeze (or release) parameters; frozen ones also lose any stale gradient."""
    for p in params:
        p.requires_grad_(not frozen)
        if frozen:
            p.grad = None


class FreezeParams(StrictModel):
    """Parameters of `freeze`."""

    #: parts (`backbone`, `head`, `block3`), module names or parameter-name patterns
    layers: list[str] = Field(min_length=1)
    epochs: int | None = Field(None, ge=1)


@TECHNIQUES.register(
    "freeze",
    description="freeze named parts (backbone, head, blockN) or layers, for N epochs or all",
    params=FreezeParams,
)
class Freeze(Technique):
    """Sets requires_grad of the matched parameters at the start of every epoch."""

    order = Slot.FREEZE

    def __init__(self, params: FreezeParams) -> None:
        self.params = params
        self.chosen: list = []

    def on_fit_start(self, state: State) -> None:
        """Resolve `layers` to parameters (a RecipeError when they name nothing or all)."""
        self.chosen = chosen_parameters(state.model, self.params.layers)
        if len(self.chosen) == len(list(state.model.parameters())):
            raise RecipeError(
                f"techniques.freeze.layers: {self.params.layers} matches every parameter, so "
                "nothing would train; leave the new head (or some layers) out of the patterns"
            )

    def on_epoch_start(self, state: State) -> None:
        """Frozen before epoch `epochs` (or always), released from it on."""
        until = self.params.epochs
        set_frozen(self.chosen, until is None or state.epoch < until)

    def on_fit_end(self, state: State) -> None:
        """Leave the model fully trainable for whoever uses it next."""
        set_frozen(self.chosen, False)
