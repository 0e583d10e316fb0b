"""Loss registry: the losses a recipe may name, as modules that check shapes.

Every loss is called `loss_fn(outputs, targets)` and returns the mean over the batch.
Each entry's `target` metadata tells the model builder what head to make:

- "multiclass": `num_classes` logits, int64 class targets of shape (N,) (float
  probability targets of shape (N, C), e.g. from mixup, are accepted too);
- "binary": ONE logit per sample, 0/1 targets (int or float) of shape (N,);
- "regression": float targets of shape (N,) or (N, k).

The shape checks exist because the classic silent bug — outputs (N, 1) against targets
(N,) broadcast to an (N, N) matrix — trains without error and learns the mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, field_validator
from torch import Tensor, nn

from trainlab.errors import RecipeError
from trainlab.optim.optimizers import coerce_params
from trainlab.params import StrictModel
from trainlab.registry import NoParams, Registry

__all__ = [
    "LOSSES",
    "BCEParams",
    "BinaryCrossEntropy",
    "CrossEntropy",
    "CrossEntropyParams",
    "Huber",
    "HuberParams",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SmoothL1",
    "SmoothL1Params",
    "align_regression",
    "build_loss",
]

LossBuilder = Callable[[BaseModel, int | None], nn.Module]

LOSSES: Registry[LossBuilder] = Registry("loss")


def _shape_error(loss: str, outputs: Tensor, targets: Tensor, fix: str) -> RecipeError:
    return RecipeError(
        f"train.loss: {loss} got outputs of shape {tuple(outputs.shape)} and targets of "
        f"shape {tuple(targets.shape)}; {fix}"
    )


def align_regression(outputs: Tensor, targets: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """Make regression outputs and targets the same shape without broadcasting.

    Only a trailing dimension of size 1 is squeezed ((N, 1) against (N,) either way);
    any other mismatch is a RecipeError, never an (N, N) broadcast. Targets are cast to
    the outputs' dtype so integer or float64 targets work.
    """
    if outputs.shape != targets.shape:
        if outputs.ndim == targets.ndim + 1 and outputs.shape[-1] == 1:
            outputs = outputs.squeeze(-1)
        elif targets.ndim == outputs.ndim + 1 and targets.shape[-1] == 1:
            targets = targets.squeeze(-1)
        if outputs.shape != targets.shape:
            raise _shape_error(
                loss, outputs, targets, "the model must output one value per target column"
            )
    return outputs, targets.to(outputs.dtype)


class MeanSquaredError(nn.Module):
    """Mean squared error, mean((y - ŷ)²): the default regression loss."""

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        outputs, targets = align_regression(outputs, targets, "mse")
        return F.mse_loss(outputs, targets)


class MeanAbsoluteError(nn.Module):
    """Mean absolute error, mean(|y - ŷ|).

    Less sensitive to outliers than MSE (its gradient has constant size), and it
    optimizes for the median rather than the mean of the target.
    """

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        outputs, targets = align_regression(outputs, targets, "mae")
        return (targets - outputs).abs().mean()


class HuberParams(StrictModel):
    """Huber loss: quadratic for errors below `delta`, linear (slope delta) above."""

    delta: float = Field(1.0, gt=0.0)


class Huber(nn.Module):
    """Huber loss: MSE near zero, MAE-like for errors above `delta` (robust regression)."""

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = delta

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        outputs, targets = align_regression(outputs, targets, "huber")
        return F.huber_loss(outputs, targets, delta=self.delta)


class SmoothL1Params(StrictModel):
    """Smooth L1: 0.5·e²/beta for |e| < beta, |e| − 0.5·beta above (= Huber/beta)."""

    beta: float = Field(1.0, ge=0.0)


class SmoothL1(nn.Module):
    """Smooth L1 loss (Fast R-CNN's): Huber scaled so the linear part has slope 1."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        outputs, targets = align_regression(outputs, targets, "smooth_l1")
        return F.smooth_l1_loss(outputs, targets, beta=self.beta)


class BCEParams(StrictModel):
    """Binary cross-entropy; `pos_weight` > 1 up-weights the positive class."""

    pos_weight: float | None = Field(None, gt=0.0)


class BinaryCrossEntropy(nn.Module):
    """Binary cross-entropy on ONE logit per sample (sigmoid inside, numerically stable).

    loss = −mean(p·y·log σ(z) + (1 − y)·log(1 − σ(z))), p = pos_weight (default 1).
    Accepts outputs (N,) or (N, 1) and 0/1 targets of any numeric dtype, shape (N,) or
    (N, 1); multi-label outputs (N, k) need targets of the same shape.
    """

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if outputs.shape != targets.shape:
            if outputs.ndim == 2 and outputs.shape[1] == 1:
                outputs = outputs.squeeze(1)
            if targets.ndim == 2 and targets.shape[1] == 1:
                targets = targets.squeeze(1)
            if outputs.shape != targets.shape:
                raise _shape_error(
                    "bce",
                    outputs,
                    targets,
                    "bce needs one logit per sample (model output size 1); "
                    "for one logit per class use cross_entropy",
                )
        pos_weight = None
        if self.pos_weight is not None:
            pos_weight = torch.tensor(self.pos_weight, dtype=outputs.dtype, device=outputs.device)
        return F.binary_cross_entropy_with_logits(
            outputs, targets.to(outputs.dtype), pos_weight=pos_weight
        )


class CrossEntropyParams(StrictModel):
    """Softmax cross-entropy with optional label smoothing and per-class weights."""

    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weights: list[float] | None = None

    @field_validator("class_weights")
    @classmethod
    def _weights_positive(cls, weights: list[float] | None) -> list[float] | None:
        if weights is not None:
            if not weights:
                raise ValueError("class_weights must not be empty; omit it for equal weights")
            if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
                raise ValueError(
                    f"class_weights must be >= 0 with at least one > 0 (got {weights})"
                )
        return weights


class CrossEntropy(nn.Module):
    """Softmax cross-entropy over `C` logits; the multiclass classification loss.

    With label smoothing ε the target puts 1 − ε on the true class and ε/C on every
    class, so loss = (1 − ε)·(−log p_y) + ε·mean_c(−log p_c); it keeps logits from
    growing without bound and usually improves calibration. With class weights w the
    batch loss is Σ w_{y_i}·(−log p_{y_i}) / Σ w_{y_i} (torch's weighted mean), which
    counters class imbalance. Targets: int class indices (N,) — float indices are cast —
    or float class probabilities of shape (N, C).
    """

    weight: Tensor | None

    def __init__(
        self, label_smoothing: float = 0.0, class_weights: list[float] | None = None
    ) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        weight = None if class_weights is None else torch.tensor(class_weights)
        self.register_buffer("weight", weight)

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if (
            self.weight is None
            and targets.dtype == torch.long
            and targets.ndim == 1
            and len(targets) == len(outputs)
        ):
            # The common case, kept free of Python-side checks: it runs every batch.
            return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)
        if outputs.ndim != 2:
            raise _shape_error(
                "cross_entropy", outputs, targets, "outputs must be (N, num_classes) logits"
            )
        probabilities = targets.is_floating_point() and targets.shape == outputs.shape
        if not probabilities:
            if targets.ndim == 2 and targets.shape[1] == 1:
                targets = targets.squeeze(1)
            if targets.shape != outputs.shape[:1]:
                raise _shape_error(
                    "cross_entropy",
                    outputs,
                    targets,
                    "targets must be class indices (N,) or class probabilities (N, C)",
                )
            targets = targets.long()
        weight = None
        if self.weight is not None:
            if self.weight.numel() != outputs.shape[1]:
                raise RecipeError(
                    f"train.loss.class_weights: {self.weight.numel()} weights for a model "
                    f"with {outputs.shape[1]} outputs; give one weight per class"
                )
            weight = self.weight.to(device=outputs.device, dtype=outputs.dtype)
        return F.cross_entropy(
            outputs, targets, weight=weight, label_smoothing=self.label_smoothing
        )


@LOSSES.register(
    "mse", description="mean squared error (regression)", params=NoParams, target="regression"
)
def _build_mse(params: BaseModel, num_classes: int | None) -> nn.Module:
    return MeanSquaredError()


@LOSSES.register(
    "mae",
    description="mean absolute error (regression; robust to outliers, fits the median)",
    params=NoParams,
    target="regression",
)
def _build_mae(params: BaseModel, num_classes: int | None) -> nn.Module:
    return MeanAbsoluteError()


@LOSSES.register(
    "huber",
    description="Huber loss (regression): squared below delta, linear above",
    params=HuberParams,
    target="regression",
)
def _build_huber(params: BaseModel, num_classes: int | None) -> nn.Module:
    assert isinstance(params, HuberParams)
    return Huber(params.delta)


@LOSSES.register(
    "smooth_l1",
    description="smooth L1 loss (regression): Huber divided by beta",
    params=SmoothL1Params,
    target="regression",
)
def _build_smooth_l1(params: BaseModel, num_classes: int | None) -> nn.Module:
    assert isinstance(params, SmoothL1Params)
    return SmoothL1(params.beta)


@LOSSES.register(
    "bce",
    description="binary cross-entropy on one logit per sample (binary classification)",
    params=BCEParams,
    target="binary",
)
def _build_bce(params: BaseModel, num_classes: int | None) -> nn.Module:
    assert isinstance(params, BCEParams)
    return BinaryCrossEntropy(params.pos_weight)


@LOSSES.register(
    "cross_entropy",
    description="softmax cross-entropy over class logits, label smoothing, class weights",
    params=CrossEntropyParams,
    target="multiclass",
)
def _build_cross_entropy(params: BaseModel, num_classes: int | None) -> nn.Module:
    assert isinstance(params, CrossEntropyParams)
    weights = params.class_weights
    if weights is not None and num_classes is not None and len(weights) != num_classes:
        raise RecipeError(
            f"train.loss.class_weights: {len(weights)} weights given but the data has "
            f"{num_classes} classes; give exactly one weight per class"
        )
    return CrossEntropy(params.label_smoothing, weights)


def build_loss(
    name: str, params: dict[str, Any] | BaseModel | None, num_classes: int | None = None
) -> nn.Module:
    """Build the loss called `name`, to be called as `loss_fn(outputs, targets)`.

    Args:
        params: the loss's knobs (e.g. `{"label_smoothing": 0.1}`); a `name` key equal
            to `name` is tolerated so the recipe's `train.loss` section can be passed whole.
        num_classes: number of classes of the data, used to check `class_weights`.

    Raises RecipeError for an unknown name (did-you-mean), an invalid knob, or class
    weights whose count differs from `num_classes`.
    """
    entry = LOSSES.get(name, where="train.loss")
    knobs = coerce_params(entry, name, params, where="train.loss")
    return entry.builder(knobs, num_classes)
