"""`label_smoothing`: train against targets with `1−ε` on the true class, `ε/C` on each class.

Method card
    What: the training loss becomes cross-entropy against smoothed targets,
    `(1−ε)·(−log p_y) + ε·mean_c(−log p_c)` (Szegedy et al. 2016). For a one-logit binary
    loss (`bce`) the 0/1 targets become `ε/2` and `1−ε/2`. Validation and test losses
    stay unsmoothed, so they remain comparable across runs.
    When: classifiers that become over-confident (large logits, poor calibration), most
    image and text classifiers; 0.1 is the usual value.
    Parameters: `smoothing` ε (default 0.1).
    Which wins: the technique. It replaces `train.loss.label_smoothing` during training;
    use one or the other (the loss parameter also smooths the validation loss).
    Conflicts: none — it works on the loss, so it composes with `mixup`/`cutmix` (their
    mixed targets are smoothed). Regression losses are refused.
"""

from __future__ import annotations

import copy

import torch
from pydantic import Field
from torch import nn

from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.optim.losses import BinaryCrossEntropy, CrossEntropy
from trainlab.params import StrictModel
from trainlab.techniques.registry import TECHNIQUES


class SmoothedBinary(nn.Module):
    """A binary loss applied to targets pulled towards 0.5 by `smoothing`/2."""

    def __init__(self, loss: nn.Module, smoothing: float) -> None:
        super().__init__()
        self.loss, self.smoothing = loss, smoothing

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        smoothed = targets.float() * (1.0 - self.smoothing) + self.smoothing / 2
        return self.loss(outputs, smoothed)


def smoothed_loss(loss_fn: nn.Module, smoothing: float) -> nn.Module:
    """A copy of `loss_fn` that smooths its targets by `smoothing`."""
    if isinstance(loss_fn, CrossEntropy):
        smoothed = copy.copy(loss_fn)
        smoothed.label_smoothing = smoothing
        return smoothed
    if isinstance(loss_fn, BinaryCrossEntropy):
        return SmoothedBinary(loss_fn, smoothing)
    raise RecipeError(
        f"techniques.label_smoothing: works with cross_entropy or bce, not "
        f"{type(loss_fn).__name__}; {TECHNIQUES.facts('label_smoothing').hint}"
    )


class LabelSmoothingParams(StrictModel):
    """Parameters of `label_smoothing`."""

    smoothing: float = Field(0.1, gt=0, lt=1)


@TECHNIQUES.register(
    "label_smoothing",
    description="cross-entropy against smoothed targets (1-eps true class); smoothing",
    params=LabelSmoothingParams,
    tasks=("multiclass", "binary"),
    hint="remove it for regression",
)
class LabelSmoothing(Technique):
    """Swaps the training loss for its label-smoothed version at the start of the fit."""

    def __init__(self, params: LabelSmoothingParams) -> None:
        self.params = params

    def on_fit_start(self, state: State) -> None:
        state.loss_fn = smoothed_loss(state.loss_fn, self.params.smoothing)
