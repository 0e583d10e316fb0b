"""`channels_last`: store convolution weights and image batches as NHWC during training.

Method card
    What: converts the model to the `channels_last` memory format at the start of every
    epoch and each 4-D input batch as it arrives; converts back to the default layout at
    the end of the epoch, so checkpoints (safetensors needs contiguous tensors) and the
    saved model are unchanged. Values are identical; only the layout and hence the
    convolution kernels chosen differ.
    When: CNNs on GPUs with tensor cores (often 10–30 % faster, more with AMP) and on
    CPUs with oneDNN; measure — on small CPU models it can be slower
    (docs/techniques.md has our figure). No effect on non-image models.
    Parameters: none.
    Conflicts: none.
"""

from __future__ import annotations

import torch

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.registry import NoParams
from trainlab.techniques.registry import TECHNIQUES


@TECHNIQUES.register(
    "channels_last",
    description="NHWC memory format for CNN weights and image batches (speed)",
    params=NoParams,
)
class ChannelsLast(Technique):
    """Switches the model and 4-D inputs to channels_last for each training epoch."""

    order = Slot.LAYOUT

    def __init__(self, params: NoParams | None = None) -> None:
        self.params = params or NoParams()

    def on_epoch_start(self, state: State) -> None:
        state.model.to(memory_format=torch.channels_last)

    def on_batch_start(self, state: State) -> None:
        x, y = state.batch
        if x.ndim == 4:
            state.batch = (x.contiguous(memory_format=torch.channels_last), y)

    def on_epoch_end(self, state: State) -> None:
        state.model.to(memory_format=torch.contiguous_format)

    def on_fit_end(self, state: State) -> None:  # a fit stopped mid-epoch
        state.model.to(memory_format=torch.contiguous_format)
