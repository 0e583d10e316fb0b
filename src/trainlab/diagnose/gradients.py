"""Gradient-flow monitor: per-layer gradient norm, weight norm and update-to-weight ratio.

Method card
    What: every `every` optimizer steps, for each weight matrix / kernel (parameters with
    two or more dimensions, in model order), records the gradient's L2 norm, the weight's
    L2 norm and the update-to-weight ratio ‖Δw‖/‖w‖ of that step. Kept in the run as
    `diagnostics/gradient_flow.json` with a plot `diagnostics/gradient_flow.png`.
    When: a model trains slowly or not at all (vanishing gradients: the early layers'
    gradients are orders of magnitude below the last layer's), or the loss jumps and
    becomes non-finite (exploding gradients: norms grow or spike). A healthy
    update-to-weight ratio is around 1e-3 per step (Karpathy's rule of thumb).
    Cost: one norm per layer on sampled steps, plus a copy of the weights on those steps.
    Parameters: `every` (steps between samples, 50), `vanish_ratio` (1e-3: first layers /
    last layer below this is vanishing), `floor` (1e-7: an absolute gradient-norm floor),
    `explode_growth` (100: late / early median of the total norm), `spike` (1000: a
    sample this many times the median), `max_update` (1.0: one step moving a layer by
    more than its own norm is explosive).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import median
from typing import Any

import torch
from pydantic import Field

from trainlab.diagnose.common import diagnostics_dir, weight_params
from trainlab.diagnose.findings import Code, Finding
from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.fileio import write_json
from trainlab.params import StrictModel
from trainlab.techniques.common import grads_unscaled
from trainlab.techniques.registry import TECHNIQUES

FILE = "gradient_flow.json"
PLOT = "gradient_flow.png"


class GradientMonitorParams(StrictModel):
    """Parameters of `gradient_monitor`."""

    every: int = Field(50, gt=0)
    vanish_ratio: float = Field(1e-3, gt=0, lt=1)
    floor: float = Field(1e-7, ge=0)
    explode_growth: float = Field(100.0, gt=1)
    spike: float = Field(1000.0, gt=1)
    max_update: float = Field(1.0, gt=0)
    plot: bool = True


@TECHNIQUES.register(
    "gradient_monitor",
    description="record per-layer gradient/weight norms and update ratios; flag vanishing "
    "or exploding gradients; every",
    params=GradientMonitorParams,
)
class GradientMonitor(Technique):
    """Samples per-layer gradient norms, weight norms and update ratios during training."""

    order = Slot.GRAD_MONITOR

    def __init__(self, params: GradientMonitorParams | None = None) -> None:
        self.params = params or GradientMonitorParams()
        self.names: list[str] = []
        self.records: list[dict[str, Any]] = []
        self._before: list[torch.Tensor] | None = None
        self._pending: dict[str, Any] | None = None

    def on_fit_start(self, state: State) -> None:
        self.names = [n for n, _ in weight_params(state.model)]

    def _sampling(self, state: State) -> bool:
        return state.step % self.params.every == 0

    @torch.no_grad()
    def on_before_step(self, state: State) -> None:
        if not self._sampling(state):
            return
        grads_unscaled(state)
        params = [p for _, p in weight_params(state.model)]
        grad = [float(p.grad.norm()) if p.grad is not None else 0.0 for p in params]
        weight = [float(p.norm()) for p in params]
        self._before = [p.detach().clone() for p in params]
        self._pending = {
            "step": state.step,
            "epoch": state.epoch,
            "grad": grad,
            "weight": weight,
        }

    @torch.no_grad()
    def on_after_step(self, state: State) -> None:
        if self._pending is None or self._before is None:
            return
        params = [p for _, p in weight_params(state.model)]
        ratio = []
        for p, old, w in zip(params, self._before, self._pending["weight"], strict=True):
            ratio.append(float((p.detach() - old).norm()) / w if w > 0 else math.nan)
        self._pending["update"] = ratio
        self.records.append(self._pending)
        self._pending, self._before = None, None

    def on_epoch_end(self, state: State) -> None:
        self._publish(state)

    def on_fit_end(self, state: State) -> None:
        self._publish(state)
        folder = diagnostics_dir(state)
        if folder is not None and self.params.plot and self.records:
            plot_gradient_flow(self.data(), folder / PLOT)

    def data(self) -> dict[str, Any]:
        """The layer names and the sampled records (what gradient_flow.json holds)."""
        return {"layers": self.names, "every": self.params.every, "records": self.records}

    def _publish(self, state: State) -> None:
        state.extras["gradient_flow"] = self.data()
        folder = diagnostics_dir(state)
        if folder is not None:
            write_json(folder / FILE, self.data())

    def state_dict(self) -> dict[str, Any]:
        return {"records": json.dumps(self.records)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = json.loads(state.get("records", "[]"))

    def findings(self) -> list[Finding]:
        """Vanishing or exploding gradients in what was recorded."""
        return analyze_gradient_flow(self.data(), self.params)


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def analyze_gradient_flow(
    data: dict[str, Any], params: GradientMonitorParams | None = None
) -> list[Finding]:
    """Findings from recorded gradient flow: VANISHING_GRADIENTS and EXPLODING_GRADIENTS.

    Vanishing: the median gradient norm of some layer before the last is below
    `vanish_ratio` × the last layer's, or below the absolute `floor`. Exploding: a
    non-finite norm, the total norm's median over the last quarter of samples
    `explode_growth` × that of the first quarter, or one sample `spike` × the median.
    """
    p = params or GradientMonitorParams()
    names, records = data.get("layers", []), data.get("records", [])
    if not names or not records:
        return []
    bad = [
        (names[i], r["step"])
        for r in records
        for i in range(len(names))
        if not math.isfinite(r["grad"][i])
    ]
    findings = [_non_finite(bad)] if bad else []
    vanishing = _vanishing(names, records, p)
    if vanishing is not None:
        findings.append(vanishing)
    if bad:
        return findings
    exploding = _growing(records, p) or _jumping(names, records, p)
    return findings + ([exploding] if exploding is not None else [])


def _non_finite(bad: list[tuple[str, int]]) -> Finding:
    return Finding(
        Code.EXPLODING_GRADIENTS,
        "error",
        f"non-finite gradient in layer {bad[0][0]} at step {bad[0][1]}",
        {"non_finite": [{"layer": n, "step": s} for n, s in bad[:10]]},
    )


def _vanishing(
    names: list[str], records: list[dict[str, Any]], p: GradientMonitorParams
) -> Finding | None:
    """Some layer before the last gets far smaller gradients than the last one."""
    per_layer = [[r["grad"][i] for r in records] for i in range(len(names))]
    medians = [median(_finite(v)) if _finite(v) else math.nan for v in per_layer]
    if len(names) < 2 or not all(math.isfinite(m) for m in medians):
        return None
    last = medians[-1]
    earlier = medians[:-1]
    weakest = min(range(len(earlier)), key=lambda i: earlier[i])
    ratio = earlier[weakest] / last if last > 0 else math.inf
    # A last layer without gradient is a dead or saturated net, not depth-wise vanishing.
    if not (last > p.floor and (ratio < p.vanish_ratio or earlier[weakest] < p.floor)):
        return None
    evidence = {
        "median_grad_norm": dict(zip(names, medians, strict=True)),
        "weakest_layer": names[weakest],
        "ratio_to_last": ratio,
        "threshold_ratio": p.vanish_ratio,
        "floor": p.floor,
    }
    return Finding(
        Code.VANISHING_GRADIENTS,
        "warning",
        f"layer {names[weakest]} gets gradients {ratio:.1e} × those of the last "
        f"layer (median norm {earlier[weakest]:.2e} vs {last:.2e}): the early "
        "layers barely learn",
        evidence,
    )


def _growing(records: list[dict[str, Any]], p: GradientMonitorParams) -> Finding | None:
    """The total gradient norm grew, or spiked, far beyond its typical size."""
    totals = _finite([math.sqrt(sum(g * g for g in r["grad"])) for r in records])
    if len(totals) < 4:
        return None
    q = max(1, len(totals) // 4)
    early, late = median(totals[:q]), median(totals[-q:])
    mid = median(totals)
    growth = late / early if early > p.floor else 0.0
    spike = max(totals) / mid if mid > p.floor else 0.0
    if not (growth > p.explode_growth or spike > p.spike):
        return None
    evidence = {
        "early_median_norm": early,
        "late_median_norm": late,
        "growth": growth,
        "max_over_median": spike,
        "thresholds": {"growth": p.explode_growth, "spike": p.spike},
    }
    why = (
        f"the total gradient norm grew {growth:.0f}× during training"
        if growth > p.explode_growth
        else f"a gradient norm spiked to {spike:.0f}× the median"
    )
    return Finding(Code.EXPLODING_GRADIENTS, "warning", why, evidence)


def _jumping(
    names: list[str], records: list[dict[str, Any]], p: GradientMonitorParams
) -> Finding | None:
    """One optimizer step changed a layer's weights by a large fraction of their norm."""
    jumps = [
        (r["update"][i], names[i], r["step"])
        for r in records
        for i in range(len(names))
        if "update" in r and math.isfinite(r["update"][i]) and r["update"][i] > p.max_update
    ]
    if not jumps:
        return None
    size, layer, step = max(jumps)
    return Finding(
        Code.EXPLODING_GRADIENTS,
        "warning",
        f"one step changed layer {layer} by {size:.0%} of its norm (step {step}); "
        "healthy steps change weights by about 0.1 %",
        {"update_ratio": size, "layer": layer, "step": step, "threshold": p.max_update},
    )


def plot_gradient_flow(data: dict[str, Any], path: Path) -> Path:
    """PNG: per-layer median/max gradient norm (bars) and each layer's norm over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, records = data["layers"], data["records"]
    steps = [r["step"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    xs = range(len(names))
    per_layer = [_finite([r["grad"][i] for r in records]) or [math.nan] for i in xs]
    ax1.bar(xs, [max(v) for v in per_layer], alpha=0.35, label="max", color="tab:blue")
    ax1.bar(xs, [median(v) for v in per_layer], alpha=0.9, label="median", color="tab:blue")
    ax1.set_yscale("log")
    ax1.set_xticks(list(xs), names, rotation=60, ha="right", fontsize=7)
    ax1.set_ylabel("gradient L2 norm")
    ax1.set_title("gradient norm per layer (input → output)")
    ax1.legend()
    cmap = plt.get_cmap("viridis")
    for i, name in enumerate(names):
        vals = [r["grad"][i] if math.isfinite(r["grad"][i]) else math.nan for r in records]
        ax2.plot(steps, vals, color=cmap(i / max(1, len(names) - 1)), label=name)
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_title("gradient norm over training")
    if len(names) <= 12:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
