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


def compare_with_baselines(
    metrics: dict[str, Any],
    baselines: dict[str, dict[str, Any]],
    *,
    target_std: float | None = None,
    test_size: int | None = None,
    advice: str = "",
    r2_margin: float = 0.01,
) -> list[Finding]:
    """BASELINE_BEATS_MODEL when a baseline's test score beats the network's.

    Classification judges by test accuracy: a warning when the gap exceeds the standard
    error of the network's accuracy on `test_size` samples, else info. Regression judges
    by R², quoting each RMSE in standard deviations of the target (`target_std`): a
    warning when the gap exceeds `r2_margin` or the network's R² is below 0 (worse than
    predicting the mean). `advice` ends the message (the recipe changes to try).
    """
    key = next((k for k in ("test_accuracy", "test_r2") if k in metrics), None)
    if key is None or not _finite(metrics[key]):
        return []
    network = float(metrics[key])
    scores = {
        name: float(b[key])
        for name, b in baselines.items()
        if isinstance(b, dict) and "error" not in b and _finite(b.get(key))
    }
    better = {name: score for name, score in scores.items() if score > network}
    if not better:
        return []
    best = max(better, key=lambda name: better[name])
    gap = better[best] - network
    evidence: dict[str, Any] = {"metric": key, "network": network, "baselines": scores}
    evidence.update(best=best, gap=gap)
    others = ", ".join(f"{n} {s:.3f}" for n, s in scores.items() if n != best)
    if key == "test_accuracy":
        noise = math.sqrt(network * (1 - network) / test_size) if test_size else 0.0
        evidence["network_standard_error"] = noise
        severe = gap > noise
        aside = f" ({others})" if others else ""
        quote = f"test accuracy {better[best]:.3f}{aside}, the network {network:.3f}"
    else:
        severe = gap > r2_margin or network < 0
        quote = _r2_quote(metrics, baselines[best], target_std, evidence, others)
    message = f"{best} reaches {quote}"
    if not severe:
        message += "; within the test split's noise"
    if advice:
        message += f": {advice}"
    return [Finding(Code.BASELINE_BEATS_MODEL, "warning" if severe else "info", message, evidence)]


def _r2_quote(
    metrics: dict[str, Any],
    best: dict[str, Any],
    std: float | None,
    evidence: dict[str, Any],
    others: str = "",
) -> str:
    """'test R² 0.45 (RMSE 0.74 σ; linear 0.40), the network 0.12 (RMSE 0.94 σ)', σ the
    target's standard deviation."""

    def rmse(values: dict[str, Any], aside: str = "") -> str:
        r = values.get("test_rmse")
        parts = [f"RMSE {float(r) / std:.2f} σ"] if std and _finite(r) else []
        parts += [aside] if aside else []
        return f" ({'; '.join(parts)})" if parts else ""

    if std:
        evidence["target_std"] = std
        evidence["rmse_over_std"] = {
            "network": metrics.get("test_rmse", math.nan) / std,
            "baseline": best.get("test_rmse", math.nan) / std,
        }
    network = float(metrics["test_r2"])
    worse = "worse than predicting the mean" if network < 0 else ""
    return (
        f"test R² {float(best['test_r2']):.3f}{rmse(best, others)}, "
        f"the network {network:.3f}{rmse(metrics, worse)}"
    )


def negative_r2_finding(metrics: dict[str, Any]) -> Finding | None:
    """UNDERFITTING when the network's test R² is below 0 (whatever the curves said)."""
    r2 = metrics.get("test_r2")
    if not _finite(r2) or float(r2) >= 0:
        return None
    return Finding(
        Code.UNDERFITTING,
        "warning",
        f"test R² is {float(r2):.2f}: worse than predicting the training mean; check the "
        "target's scale (data.preprocessing.target_scale) and the learning rate",
        {"test_r2": float(r2), "test_rmse": metrics.get("test_rmse")},
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
