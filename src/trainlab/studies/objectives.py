"""What a search optimizes: validation metrics, parameter count, measured latency.

The test split never guides a search: only `val_*` metrics (or a cross-validated mean of
them) and the model's cost (`params`, `latency_ms`) may be objectives.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainlab.errors import RecipeError

COSTS = ("params", "latency_ms")
LOWER_IS_BETTER = ("loss", "rmse", "mae", "mse", "error", "params", "latency", "seconds")


@dataclass(frozen=True)
class Objective:
    """One objective: a metric name and whether to maximize or minimize it."""

    metric: str
    direction: str  # maximize | minimize

    @property
    def per_epoch(self) -> bool:
        """Whether the engine reports it every epoch (so pruners can use it)."""
        return self.metric.startswith("val_")

    def spec(self) -> str:
        """'max:val_accuracy' — the form that parses back to this objective."""
        return f"{self.direction[:3]}:{self.metric}"


def parse_objective(text: str) -> Objective:
    """'val_accuracy', 'max:val_accuracy' or 'val_loss:min' → Objective; RecipeError if wrong."""
    raw = text.strip()
    direction = None
    words = ("max", "min", "maximize", "minimize")
    parts = [s.strip() for s in raw.split(":", 1)]
    if len(parts) == 2:
        if parts[0].lower() in words:
            direction, raw = parts[0].lower(), parts[1]
        elif parts[1].lower() in words:
            direction, raw = parts[1].lower(), parts[0]
        else:
            raise RecipeError(f"--objective '{text}': write METRIC, max:METRIC or min:METRIC")
    if raw.startswith("test_"):
        raise RecipeError(
            f"--objective '{text}': the test split never guides a search; use the "
            f"validation metric '{'val_' + raw.removeprefix('test_')}'"
        )
    if not (raw.startswith("val_") or raw in COSTS):
        raise RecipeError(
            f"--objective '{text}': choose a validation metric (val_accuracy, val_loss, "
            f"val_f1, val_rmse, …) or a cost ({', '.join(COSTS)})"
        )
    if direction is None:
        low = any(word in raw for word in LOWER_IS_BETTER)
        direction = "minimize" if low else "maximize"
    direction = {"max": "maximize", "min": "minimize"}.get(direction, direction)
    return Objective(raw, direction)


def parse_objectives(specs: str | list[str] | None, task: str) -> list[Objective]:
    """The objectives of a study; the default follows the task (accuracy or RMSE)."""
    if not specs:
        specs = ["val_accuracy" if task == "classification" else "val_rmse"]
    if isinstance(specs, str):
        specs = [specs]
    items = [s for spec in specs for s in spec.split(",") if s.strip()]
    objectives = [parse_objective(s) for s in items]
    names = [o.metric for o in objectives]
    if len(set(names)) != len(names):
        raise RecipeError(f"--objective names a metric twice: {', '.join(names)}")
    if not objectives[0].per_epoch:
        raise RecipeError(
            f"--objective: the first objective must be a validation metric (got "
            f"'{objectives[0].metric}'); put costs after it, e.g. val_accuracy,params"
        )
    return objectives


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable and frozen parameters of a model."""
    return int(sum(p.numel() for p in model.parameters()))


@torch.no_grad()
def measure_latency_ms(
    model: torch.nn.Module, input_shape: tuple[int, ...], repeats: int = 30
) -> float:
    """Median wall time of one forward pass on a single sample, in milliseconds (CPU)."""
    model.eval()
    x = torch.zeros((1, *input_shape))
    for _ in range(5):
        model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def cost_metrics(run_dir: Path, names: list[str]) -> dict[str, float]:
    """`params` and/or `latency_ms` of a trained run (loaded from disk, as users would)."""
    if not names:
        return {}
    from trainlab.predict import load

    predictor = load(run_dir)
    found: dict[str, float] = {}
    if "params" in names:
        found["params"] = float(count_parameters(predictor.model))
    if "latency_ms" in names:
        found["latency_ms"] = measure_latency_ms(predictor.model, predictor.info.input_shape)
    return found


def finite(value: float | None) -> bool:
    """A usable objective value."""
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)
