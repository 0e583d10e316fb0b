"""Fit analysis from the learning curves: under-fitting, over-fitting, good fit or still improving.

Bias and variance the way seed 001 reads them: the training error against a reference
(a target error the user expects to reach, else zero — perfect accuracy, all variance
explained) is the avoidable bias; the validation error minus the training error is the
variance. The training error is `train_eval_*` (a fixed training subset re-evaluated in
eval mode, so dropout does not inflate it), which puts it on the same footing as
validation. The trend of the last epochs tells a model that is still learning from one
that has stopped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from trainlab.diagnose.findings import Code, Finding

UNDERFITTING = "under-fitting"
OVERFITTING = "over-fitting"
GOOD_FIT = "good fit"
STILL_IMPROVING = "still improving"


@dataclass
class FitDiagnosis:
    """The verdict and the numbers behind it (errors are fractions: 0.03 = 3 %)."""

    verdict: str
    reason: str
    metric: str
    train_error: float | None = None
    val_error: float | None = None
    reference_error: float = 0.0
    bias: float | None = None
    variance: float | None = None
    val_loss_rise: float | None = None
    train_trend: float | None = None
    val_trend: float | None = None
    epochs: int = 0
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return d


def _error(row: dict[str, Any], split: str) -> tuple[float | None, str]:
    if f"{split}_accuracy" in row:
        return 1.0 - float(row[f"{split}_accuracy"]), "accuracy"
    if f"{split}_r2" in row:
        return 1.0 - float(row[f"{split}_r2"]), "r2"
    return None, ""


def _trend(values: list[float], window: int) -> float | None:
    """Mean relative decrease per epoch over the last `window` epochs (0.05 = 5 %/epoch)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if len(vals) < 2:
        return None
    k = min(window, len(vals) - 1)
    start, end = vals[-k - 1], vals[-1]
    if start == 0:
        return 0.0
    return (start - end) / abs(start) / k


def analyze_fit(
    history: list[dict[str, Any]],
    target: float | None = None,
    *,
    bias_threshold: float = 0.1,
    variance_threshold: float = 0.05,
    rise_threshold: float = 0.15,
    improving_threshold: float = 0.03,
    window: int = 3,
    val_size: int | None = None,
) -> FitDiagnosis:
    """Diagnose a run's per-epoch history.

    Args:
        target: the error (e.g. 0.02) or accuracy/R² (e.g. 0.98, any value > 0.5 is read
            as a score) the model should reach; the reference for the bias.
        bias_threshold: avoidable bias above which the model under-fits.
        variance_threshold: validation-minus-training error above which it over-fits.
        rise_threshold: relative rise of the validation loss above its best that also
            means over-fitting when the training loss keeps falling.
        improving_threshold: relative decrease per epoch of the validation loss over the
            last `window` epochs above which the run is still improving.
        val_size: samples in the validation split. When given, the error gap must exceed
            `variance_threshold` by one standard error of the validation error
            (binomial: sqrt(e(1-e)/n)): on a 144-sample split one sample is 0.7 points,
            and a gap of a few samples is noise, not over-fitting.
    """
    rows = [r for r in history if "val_loss" in r]
    if not rows:
        return FitDiagnosis("unknown", "no validation metrics in the history", "")
    reference = 0.0
    if target is not None:
        reference = 1.0 - target if target > 0.5 else target
    d = _measure(rows, reference, window)
    evidence = {
        k: getattr(d, k)
        for k in ("metric", "train_error", "val_error", "reference_error", "bias", "variance")
    }
    evidence.update(val_loss_rise=d.val_loss_rise, train_trend=d.train_trend, val_trend=d.val_trend)
    noise = 0.0
    if val_size and d.val_error is not None and 0 <= d.val_error <= 1:
        noise = math.sqrt(d.val_error * (1 - d.val_error) / val_size)
        evidence["val_error_standard_error"] = noise
    gap_beyond_noise = (d.variance or 0.0) - noise > variance_threshold
    d.verdict, d.reason = _judge(
        d, gap_beyond_noise, bias_threshold, rise_threshold, improving_threshold
    )
    evidence["verdict"] = d.verdict
    if d.verdict == OVERFITTING:
        severity = "warning" if gap_beyond_noise else "info"
        d.findings.append(Finding(Code.OVERFITTING, severity, d.reason, evidence))
    elif d.verdict == UNDERFITTING:
        d.findings.append(Finding(Code.UNDERFITTING, "warning", d.reason, evidence))
    return d


def _measure(rows: list[dict[str, Any]], reference: float, window: int) -> FitDiagnosis:
    """Errors, bias, variance, validation-loss rise and trends of the last epoch."""
    last = rows[-1]
    train_err, metric = _error(last, "train_eval")
    val_err, _ = _error(last, "val")
    val_losses = [float(r["val_loss"]) for r in rows]
    train_losses = [float(r.get("train_eval_loss", r.get("train_loss", math.nan))) for r in rows]
    best = min((v for v in val_losses if math.isfinite(v)), default=math.nan)
    rise = (val_losses[-1] - best) / abs(best) if best and math.isfinite(best) else None
    return FitDiagnosis(
        verdict=GOOD_FIT,
        reason="",
        metric=metric or "loss",
        train_error=train_err,
        val_error=val_err,
        reference_error=reference,
        bias=None if train_err is None else train_err - reference,
        variance=None if train_err is None or val_err is None else val_err - train_err,
        val_loss_rise=rise,
        train_trend=_trend(train_losses, window),
        val_trend=_trend(val_losses, window),
        epochs=len(rows),
    )


def _judge(
    d: FitDiagnosis,
    gap_beyond_noise: bool,
    bias_threshold: float,
    rise_threshold: float,
    improving_threshold: float,
) -> tuple[str, str]:
    """The verdict and its reason, in order: over-fitting, under-fitting, improving, good."""
    train_err, val_err, rise = d.train_error, d.val_error, d.val_loss_rise
    bias, variance = d.bias or 0.0, d.variance or 0.0
    train_falling = (d.train_trend or 0) > 0
    improving = (d.val_trend or 0) > improving_threshold
    if gap_beyond_noise and variance >= bias:
        return OVERFITTING, (
            f"validation error {val_err:.1%} is {variance:.1%} above the training error "
            f"{train_err:.1%}"
        )
    if rise is not None and rise > rise_threshold and train_falling and variance > 0.01:
        return OVERFITTING, (
            f"validation loss rose {rise:.0%} above its best while the training loss kept "
            f"falling (error gap {variance:.1%})"
        )
    if d.metric == "r2" and val_err is not None and val_err > 1:
        # worse than predicting the mean: never "still improving" or "no alarm"
        return UNDERFITTING, (
            f"validation R² is {1 - val_err:.2f}: worse than predicting the training mean; "
            "check the target's scale (data.preprocessing.target_scale) and the learning rate"
        )
    if bias > bias_threshold and not improving:
        return UNDERFITTING, (
            f"training error {train_err:.1%} is {bias:.1%} above the reference "
            f"{d.reference_error:.1%}, and the validation loss has stopped falling"
        )
    if improving:
        return STILL_IMPROVING, (
            f"validation loss still falls {d.val_trend:.1%} per epoch over the last epochs; "
            "train longer before judging"
        )
    if train_err is not None:
        return GOOD_FIT, "training error near the reference, small validation gap"
    return GOOD_FIT, "validation loss has settled"
