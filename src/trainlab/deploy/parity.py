"""Output parity between a PyTorch model and its exported artifact.

Both run on the same model inputs (the run's test split, plus its first row alone, which
checks the dynamic batch dimension at size 1). Parity holds when every output value
satisfies |artifact − torch| ≤ atol + rtol·|torch| (numpy.allclose's rule) and the task
metric is the same under both: equal accuracy for classification (the same rows right),
for regression an RMSE within the same tolerance.

`max_rel_diff` is max |artifact − torch| / |torch| over the values with |torch| > atol
(near zero the absolute tolerance governs, and a relative difference means nothing);
`tolerance_used` is max |artifact − torch| / (atol + rtol·|torch|): at most 1 passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from trainlab.engine.metrics import compute_metrics, predictions
from trainlab.tasks import TaskInfo


@dataclass(frozen=True)
class Parity:
    """What the parity check measured, and whether the artifact passed."""

    split: str
    samples: int
    rtol: float
    atol: float
    max_abs_diff: float
    max_rel_diff: float
    tolerance_used: float
    metric: str  # accuracy (classification) or rmse (regression)
    metric_torch: float
    metric_export: float
    mismatches: int  # rows whose prediction differs (classification) or outputs out of tolerance
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the outputs are within tolerance and the metric is the same."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """The numbers as plain JSON, with `passed` and `<metric>_torch/_export`."""
        d = asdict(self)
        d[f"{self.metric}_torch"] = self.metric_torch
        d[f"{self.metric}_export"] = self.metric_export
        return {**d, "passed": self.passed}


def differences(
    reference: np.ndarray, candidate: np.ndarray, rtol: float, atol: float
) -> tuple[float, float, float, np.ndarray]:
    """(max abs diff, max rel diff, tolerance used, per-row out-of-tolerance flags).

    A non-finite artifact output where torch's is finite counts as out of tolerance
    everywhere it occurs (its difference is reported as the largest finite one).
    """
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    got = candidate.astype(np.float64).reshape(len(candidate), -1)
    both_nan = np.isnan(ref) & np.isnan(got)
    diff = np.where(both_nan, 0.0, np.abs(got - ref))
    bad = ~np.isfinite(diff)
    finite = np.where(bad, 0.0, diff)
    allowed = atol + rtol * np.abs(np.nan_to_num(ref))
    outside = bad | (finite > allowed)
    meaningful = np.abs(ref) > atol
    rel = float((finite[meaningful] / np.abs(ref[meaningful])).max()) if meaningful.any() else 0.0
    used = float((finite / allowed).max()) if finite.size else 0.0
    return float(finite.max()) if finite.size else 0.0, rel, used, outside.any(axis=1)


def check(
    reference: np.ndarray,
    candidate: np.ndarray,
    y: torch.Tensor,
    info: TaskInfo,
    *,
    split: str,
    rtol: float,
    atol: float,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
) -> Parity:
    """Compare the artifact's outputs `candidate` with torch's `reference` on targets `y`.

    `extra` is another (reference, candidate) pair whose values count in the
    differences but not in the metric (the first row run alone, at batch size 1).
    """
    failures = []
    if candidate.shape != reference.shape:
        failures.append(
            f"the artifact's outputs have shape {candidate.shape}, torch's {reference.shape}"
        )
        candidate = np.full(reference.shape, np.nan, dtype=np.float32)
    ref_all, got_all = reference, candidate
    if extra is not None and extra[0].shape == extra[1].shape:
        ref_all = np.concatenate([reference, extra[0]])
        got_all = np.concatenate([candidate, extra[1]])
    elif extra is not None:
        failures.append(f"at batch size 1 the artifact's outputs have shape {extra[1].shape}")
    max_abs, max_rel, used, outside = differences(ref_all, got_all, rtol, atol)
    if outside.any():
        rows = int(outside[: len(reference)].sum())
        alone = " and the row run alone" if outside[len(reference) :].any() else ""
        failures.append(
            f"{rows} of {len(reference)} rows{alone} differ by more than atol {atol:g} + rtol "
            f"{rtol:g}·|torch| (max abs diff {max_abs:.3g}, {used:.3g}x the tolerance)"
        )
    name, m_torch, m_export, mismatches = _metric(reference, candidate, y, info)
    if name == "accuracy" and m_torch != m_export:
        failures.append(
            f"test accuracy differs: torch {m_torch:.6f}, export {m_export:.6f} "
            f"({mismatches} rows predicted differently)"
        )
    if name == "rmse" and not abs(m_export - m_torch) <= atol + rtol * abs(m_torch):
        failures.append(f"test RMSE differs: torch {m_torch:.6g}, export {m_export:.6g}")
    if name == "rmse":
        mismatches = int(outside[: len(reference)].sum())
    return Parity(split, len(reference), rtol, atol, max_abs, max_rel, used, name,
                  m_torch, m_export, mismatches, failures)  # fmt: skip


def _metric(
    reference: np.ndarray, candidate: np.ndarray, y: torch.Tensor, info: TaskInfo
) -> tuple[str, float, float, int]:
    """(metric name, under torch, under the artifact, rows predicted differently), with
    the engine's own metric functions (what `trainlab evaluate` reports)."""
    kind = info.target_kind
    ref, got = torch.from_numpy(reference), torch.from_numpy(np.nan_to_num(candidate))
    name = "rmse" if kind == "regression" else "accuracy"
    shift, scale = info.target_shift, info.target_scale
    m_ref = compute_metrics(ref, y, kind, shift, scale)[name]
    m_got = compute_metrics(got, y, kind, shift, scale)[name]
    mismatches = 0
    if kind != "regression":
        mismatches = int((predictions(ref, kind) != predictions(got, kind)).sum())
    return name, float(m_ref), float(m_got), mismatches
