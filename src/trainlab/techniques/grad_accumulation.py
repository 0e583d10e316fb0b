"""`grad_accumulation`: one optimizer step per `steps` batches, as if on a k× larger batch.

Method card
    What: gradients of `steps` consecutive batches are combined, weighted by batch size,
    and one optimizer step is taken — numerically the step a batch `steps` times larger
    would take (up to float rounding), without its memory. The last group of an epoch may
    be shorter; it is still weighted exactly. Batch norm still sees the small batches.
    When: the batch size that trains well does not fit in memory, or to reproduce a
    recipe's large batch on a small machine. Remember the learning-rate schedule counts
    optimizer steps, which are now `steps` times fewer.
    Parameters: `steps` (default 4).
    Conflicts: `sam` (its second pass would see only the last batch).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.params import StrictModel
from trainlab.techniques.common import batches_per_epoch
from trainlab.techniques.registry import TECHNIQUES


def _grads(state: State) -> list[torch.Tensor]:
    return [p.grad for p in state.model.parameters() if p.grad is not None]


class GradAccumulationParams(StrictModel):
    """Parameters of `grad_accumulation`."""

    steps: int = Field(4, ge=1)


@TECHNIQUES.register(
    "grad_accumulation",
    description="one optimizer step per k batches, equal to a k-times larger batch; steps",
    params=GradAccumulationParams,
    conflicts=["sam"],
)
class GradAccumulation(Technique):
    """Keeps `.grad` equal to the sample-weighted mean gradient of the group so far.

    Each batch's loss is a mean over its n samples; after S samples the stored gradient
    is their mean. Before the next backward it is scaled by S/n, the backward adds the
    new batch's mean gradient, then the sum is scaled by n/(S+n): the mean over S+n.
    The reported loss is untouched.
    """

    order = Slot.ACCUMULATE

    def __init__(self, params: GradAccumulationParams) -> None:
        self.params = params
        self.seen = 0  # samples in the current group
        self.in_group = 0  # batches in the current group

    def on_epoch_start(self, state: State) -> None:
        self.seen, self.in_group = 0, 0

    def on_after_loss(self, state: State) -> None:
        n = len(state.batch[1])
        if self.seen:
            torch._foreach_mul_(_grads(state), self.seen / n)

    def on_after_backward(self, state: State) -> None:
        n = len(state.batch[1])
        total = self.seen + n
        if self.seen:
            torch._foreach_mul_(_grads(state), n / total)
        self.seen, self.in_group = total, self.in_group + 1
        last = batches_per_epoch(state)
        end_of_epoch = last is not None and state.batch_index == last - 1
        if self.in_group < self.params.steps and not end_of_epoch:
            state.skip_step = True
        else:
            self.seen, self.in_group = 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "in_group": self.in_group}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen, self.in_group = int(state["seen"]), int(state["in_group"])
