"""Activation statistics: dead ReLU units, saturated sigmoid/tanh units, mean and std per layer.

Method card
    What: every `every` steps, hooks the forward pass of one training batch and records,
    for each activation module (ReLU family, sigmoid, tanh, ELU, SELU, GELU, SiLU): the
    output's mean and std; for ReLU/ReLU6, the fraction of units that output zero for
    every sample of the batch (dead units; a conv channel counts as one unit); for
    sigmoid and tanh, the fraction of outputs within `saturation_margin` of an asymptote.
    Kept as `diagnostics/activations.json`.
    When: a ReLU net stops improving after a too-large step (dying ReLU), or a deep
    sigmoid/tanh net trains slowly (saturation kills the gradient).
    Cost: on sampled steps only, a few reductions per activation layer.
    Parameters: `every` (50), `dead_threshold` (0.4: a layer with more dead units is
    flagged), `saturation_threshold` (0.5), `saturation_margin` (0.01).
"""

from __future__ import annotations

import json
from statistics import mean
from typing import Any

import torch
from pydantic import Field
from torch import nn

from trainlab.diagnose.common import diagnostics_dir
from trainlab.diagnose.findings import Code, Finding
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.fileio import write_json
from trainlab.params import StrictModel
from trainlab.techniques.registry import TECHNIQUES

FILE = "activations.json"

RELU_KINDS = (nn.ReLU, nn.ReLU6)
SATURATING = {nn.Sigmoid: (0.0, 1.0), nn.Tanh: (-1.0, 1.0)}
WATCHED = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh)


class ActivationStatsParams(StrictModel):
    """Parameters of `activation_stats`."""

    every: int = Field(50, gt=0)
    dead_threshold: float = Field(0.4, gt=0, le=1)
    saturation_threshold: float = Field(0.5, gt=0, le=1)
    saturation_margin: float = Field(0.01, gt=0, lt=0.5)


@torch.no_grad()
def activation_summary(module: nn.Module, y: torch.Tensor, margin: float = 0.01) -> dict:
    """Statistics of one activation output (batch first): mean, std, dead, saturated."""
    y = y.detach().float()
    stats: dict[str, Any] = {
        "kind": type(module).__name__,
        "mean": float(y.mean()),
        "std": float(y.std()) if y.numel() > 1 else 0.0,
    }
    if isinstance(module, RELU_KINDS) and y.ndim >= 2:
        # A unit is a feature (dense) or a channel (conv): dead if zero everywhere.
        alive = (y.transpose(0, 1).reshape(y.shape[1], -1) > 0).any(dim=1)
        stats["dead"] = float(1.0 - alive.float().mean())
    for kind, (low, high) in SATURATING.items():
        if isinstance(module, kind):
            span = high - low
            near = (y <= low + margin * span) | (y >= high - margin * span)
            stats["saturated"] = float(near.float().mean())
    return stats


@TECHNIQUES.register(
    "activation_stats",
    description="record dead-ReLU fraction, sigmoid/tanh saturation, mean and std per "
    "activation layer; every",
    params=ActivationStatsParams,
)
class ActivationStats(Technique):
    """Samples per-layer activation statistics on a training batch every `every` steps."""

    def __init__(self, params: ActivationStatsParams | None = None) -> None:
        self.params = params or ActivationStatsParams()
        self.records: list[dict[str, Any]] = []
        self._hooks: list[Any] = []
        self._current: dict[str, Any] | None = None

    def on_batch_start(self, state: State) -> None:
        if state.step % self.params.every or self._hooks:
            return
        self._current = {"step": state.step, "epoch": state.epoch, "layers": {}}
        for name, module in state.model.named_modules():
            if isinstance(module, WATCHED):
                self._hooks.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._current is not None and isinstance(output, torch.Tensor):
                key = name if name not in self._current["layers"] else f"{name}#2"
                self._current["layers"][key] = activation_summary(
                    module, output, self.params.saturation_margin
                )

        return record

    def on_after_forward(self, state: State) -> None:
        if not self._hooks:
            return
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._current and self._current["layers"]:
            self.records.append(self._current)
        self._current = None

    def on_epoch_end(self, state: State) -> None:
        state.extras["activation_stats"] = self.records
        folder = diagnostics_dir(state)
        if folder is not None:
            write_json(folder / FILE, {"records": self.records})

    def on_fit_end(self, state: State) -> None:
        self.on_epoch_end(state)

    def state_dict(self) -> dict[str, Any]:
        return {"records": json.dumps(self.records)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = json.loads(state.get("records", "[]"))

    def findings(self) -> list[Finding]:
        """Dead units and saturation in what was recorded."""
        return analyze_activations(self.records, self.params)


def layer_averages(records: list[dict[str, Any]], tail: float = 1 / 3) -> dict[str, dict]:
    """Per layer, the mean of each statistic over the last `tail` of the samples."""
    if not records:
        return {}
    recent = records[-max(1, round(len(records) * tail)) :]
    names = list(dict.fromkeys(n for r in recent for n in r["layers"]))
    out = {}
    for n in names:
        rows = [r["layers"][n] for r in recent if n in r["layers"]]
        avg = {"kind": rows[0]["kind"]}
        for key in ("mean", "std", "dead", "saturated"):
            vals = [row[key] for row in rows if key in row]
            if vals:
                avg[key] = mean(vals)
        out[n] = avg
    return out


def analyze_activations(
    records: list[dict[str, Any]], params: ActivationStatsParams | None = None
) -> list[Finding]:
    """DEAD_UNITS and SATURATION findings from recorded statistics (last third of training)."""
    p = params or ActivationStatsParams()
    layers = layer_averages(records)
    findings = []
    dead = {n: s["dead"] for n, s in layers.items() if s.get("dead", 0) > p.dead_threshold}
    if dead:
        worst = max(dead, key=dead.get)
        findings.append(
            Finding(
                Code.DEAD_UNITS,
                "warning",
                f"{dead[worst]:.0%} of the units after layer {worst} output zero for a whole "
                "batch (dead ReLUs)",
                {"dead_fraction": dead, "threshold": p.dead_threshold, "layers": layers},
            )
        )
    sat = {
        n: s["saturated"]
        for n, s in layers.items()
        if s.get("saturated", 0) > p.saturation_threshold
    }
    if sat:
        worst = max(sat, key=sat.get)
        findings.append(
            Finding(
                Code.SATURATION,
                "warning",
                f"{sat[worst]:.0%} of the outputs of {layers[worst]['kind']} layer {worst} sit "
                "at an asymptote, where its gradient is almost zero",
                {"saturated_fraction": sat, "threshold": p.saturation_threshold},
            )
        )
    return findings
