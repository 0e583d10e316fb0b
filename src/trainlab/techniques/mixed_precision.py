"""`mixed_precision`: run forward and loss in bfloat16 (CPU or GPU) or float16 (GPU).

Method card
    What: sets the engine's autocast dtype, so matrix multiplications and convolutions
    run in 16-bit while weights, optimizer state and the update stay float32.
    `bf16` keeps float32's exponent range and needs no loss scaling; `fp16` (CUDA only)
    gets a gradient scaler that scales the loss up and skips steps whose gradients
    overflow. Evaluation runs under the same autocast.
    When: speed and memory. On this project's CPU (bf16 instructions) the MNIST CNN
    step is faster — see docs/techniques.md for the measured ratio; on CPUs without
    bf16 support it can be slower. Accuracy should match float32 to a few tenths.
    Parameters: `dtype` (`bf16` default, or `fp16`).
    Caveats: fp16 is offered on CUDA only (fp16 on CPU is refused). No GPU was
    available to this project: the grad-scaler path is tested on CPU float16 autocast
    (tests/techniques/test_fp16.py), not on CUDA kernels. The scaler's state resumes
    with the run.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.registry import TECHNIQUES

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: Devices fp16 training is offered on. CPU float16 matmuls are slow and have no use in
#: practice, so the recipe is refused there; the tests add "cpu" to run the whole
#: grad-scaler path (scaling, unscaling, skipped steps, resume) on this machine.
FP16_DEVICES = ("cuda",)


class MixedPrecisionParams(StrictModel):
    """Parameters of `mixed_precision`."""

    dtype: Literal["bf16", "fp16"] = "bf16"


@TECHNIQUES.register(
    "mixed_precision",
    description="bf16 autocast (CPU/GPU) or fp16 with a grad scaler (CUDA); dtype",
    params=MixedPrecisionParams,
)
class MixedPrecision(Technique):
    """Turns on autocast (and, for fp16 on CUDA, a gradient scaler) for the fit."""

    order = Slot.PRECISION

    def __init__(self, params: MixedPrecisionParams) -> None:
        self.params = params
        self.scaler: Any = None
        self._saved_scaler: dict[str, Any] | None = None

    def on_fit_start(self, state: State) -> None:
        if self.params.dtype == "fp16":
            if state.device.type not in FP16_DEVICES:
                raise RecipeError(
                    "techniques.mixed_precision.dtype: fp16 needs a CUDA device; "
                    f"use bf16 on {state.device.type}"
                )
            self.scaler = state.grad_scaler = torch.amp.GradScaler(state.device.type)
            if self._saved_scaler:
                self.scaler.load_state_dict(self._saved_scaler)
        state.autocast_dtype = DTYPES[self.params.dtype]

    # The engine's checkpoint restores state.grad_scaler only if it exists before the fit
    # starts; this technique creates it at FIT_START, so it saves the scaler itself.
    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict() if self.scaler is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._saved_scaler = dict(state.get("scaler") or {}) or None
