"""The events the engine fires, in the order they occur within a fit."""

from __future__ import annotations

from enum import Enum


class Event(str, Enum):
    """A point in the training loop where techniques may act.

    Per fit: FIT_START, then per epoch EPOCH_START, per batch BATCH_START →
    AFTER_FORWARD → AFTER_LOSS → AFTER_BACKWARD → BEFORE_STEP → AFTER_STEP → BATCH_END,
    then EVAL_START → EVAL_END (validation), EPOCH_END; after the last epoch the test
    evaluation (EVAL_START → EVAL_END with split "test") and FIT_END.
    """

    FIT_START = "fit_start"
    EPOCH_START = "epoch_start"
    BATCH_START = "batch_start"
    AFTER_FORWARD = "after_forward"
    AFTER_LOSS = "after_loss"
    AFTER_BACKWARD = "after_backward"
    BEFORE_STEP = "before_step"
    AFTER_STEP = "after_step"
    BATCH_END = "batch_end"
    EVAL_START = "eval_start"
    EVAL_END = "eval_end"
    EPOCH_END = "epoch_end"
    FIT_END = "fit_end"


class StopReason(str, Enum):
    """Why a fit ended; recorded in the run and read by the doctor."""

    COMPLETED = "completed"
    PATIENCE_EXHAUSTED = "patience_exhausted"
    NON_FINITE_LOSS = "non_finite_loss"
    NON_FINITE_GRADIENT = "non_finite_gradient"
    TARGET_REACHED = "target_reached"
    TIME_LIMIT = "time_limit"
    PRUNED = "pruned"
    INTERRUPTED = "interrupted"


class StopFit(Exception):
    """Raised by a technique (or the engine) to end the fit with a reason."""

    def __init__(self, reason: StopReason, message: str = "") -> None:
        super().__init__(message or reason.value)
        self.reason = reason
        self.message = message or reason.value
