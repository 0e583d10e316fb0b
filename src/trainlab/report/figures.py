"""Matplotlib figures the report pages inline: learning curves, gradient flow, activation
statistics, the LR range test, confusion matrix, residuals, effect forest plots.

Each function takes the plain data a run or study directory holds (lists of dicts as in
history.jsonl, diagnostics/*.json, results.json) and returns an open figure that the page
encodes and closes. Drawing uses the Agg backend: no display, no network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLOURS = (
    "#1565c0",
    "#c62828",
    "#2e7d32",
    "#ef6c00",
    "#6a1b9a",
    "#00838f",
    "#5d4037",
    "#ad1457",
    "#827717",
    "#37474f",
)
VERDICT_COLOURS = {"helps": "#2e7d32", "hurts": "#c62828"}

plt.rcParams.update(
    {
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "font.size": 9,
        "axes.titlesize": 10,
        "legend.fontsize": 8,
        "legend.frameon": False,
    }
)


def _finite(values: Sequence[Any]) -> list[float]:
    return [
        float(v) if isinstance(v, int | float) and math.isfinite(v) else math.nan for v in values
    ]


def metric_name(rows: Sequence[dict[str, Any]]) -> str | None:
    """The task's headline metric in a history: accuracy, r2, rmse or mae (None if none)."""
    keys = {k for r in rows for k in r}
    for name in ("accuracy", "r2", "rmse", "mae"):
        if f"val_{name}" in keys or f"train_eval_{name}" in keys:
            return name
    return None


def best_epoch(rows: Sequence[dict[str, Any]]) -> int | None:
    """The epoch of the best validation value: highest accuracy/R², else lowest loss."""
    metric = metric_name(rows)
    key, sign = ("val_loss", -1.0)
    if metric in ("accuracy", "r2"):
        key, sign = f"val_{metric}", 1.0
    scored = [(sign * float(r[key]), -int(r["epoch"])) for r in rows if _ok(r.get(key))]
    if not scored:
        return None
    return -max(scored)[1]


def _ok(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


SERIES = {
    "train_loss": ("train (running mean)", "#90a4ae", "--"),
    "train_eval": ("train (eval mode)", "#1565c0", "-"),
    "val": ("validation", "#e65100", "-"),
    "lr": ("learning rate", "#6a1b9a", "-"),
}


def _series(key: str) -> tuple[str, str, str]:
    if key in SERIES:
        return SERIES[key]
    return SERIES["train_eval" if key.startswith("train_eval_") else "val"]


PANEL = (4.8, 3.2)  # inches: one panel; pages put panels side by side or stack them


def learning_curves(
    rows: Sequence[dict[str, Any]], best: int | None, stop: str | None
) -> list[plt.Figure]:
    """One figure each for the loss, the task metric and (when it changes) the learning
    rate per epoch, with the best epoch and an early stop marked."""
    metric = metric_name(rows)
    panels = [("loss", ("train_loss", "train_eval_loss", "val_loss"))]
    if metric:
        panels.append((metric, (f"train_eval_{metric}", f"val_{metric}")))
    lrs = [v for v in _finite([r.get("lr") for r in rows]) if v > 0]
    if lrs and max(lrs) > min(lrs):
        panels.append(("learning rate", ("lr",)))
    epochs = [int(r["epoch"]) for r in rows]
    made = []
    for title, keys in panels:
        fig, ax = plt.subplots(figsize=PANEL)
        for key in (k for k in keys if any(k in r for r in rows)):
            label, colour, style = _series(key)
            values = _finite([r.get(key, math.nan) for r in rows])
            ax.plot(
                epochs, values, marker="o", markersize=3, color=colour, linestyle=style, label=label
            )
        if best is not None:
            ax.axvline(
                best, color="#2e7d32", linestyle="--", linewidth=1, label=f"best epoch {best}"
            )
        if stop and stop != "completed" and epochs:
            ax.axvline(
                epochs[-1], color="#c62828", linestyle=":", linewidth=1.2, label=f"stop: {stop}"
            )
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if title == "learning rate" and max(lrs) / min(lrs) > 20:
            ax.set_yscale("log")
        ax.legend(loc="best")
        fig.tight_layout()
        made.append(fig)
    return made


def gradient_flow(data: dict[str, Any]) -> list[plt.Figure]:
    """Per-layer gradient norm, and update-to-weight ratio, over the sampled steps."""
    layers, records = data.get("layers") or [], data.get("records") or []
    steps = [r["step"] for r in records]
    made = []
    for key, title in (
        ("grad", "gradient L2 norm per layer"),
        ("update", "update / weight ratio per step"),
    ):
        fig, ax = plt.subplots(figsize=PANEL)
        for i, name in enumerate(layers):
            values = [_positive((r.get(key) or [math.nan] * len(layers))[i]) for r in records]
            ax.plot(steps, values, color=COLOURS[i % len(COLOURS)], linewidth=1.2, label=name)
        if key == "update":
            ax.axhline(
                1e-3, color="black", linestyle="--", linewidth=0.8, label="1e-3 rule of thumb"
            )
        ax.set(yscale="log", title=title, xlabel="step")
        ax.legend(loc="best", fontsize=7, ncol=1 + len(layers) // 6)
        fig.tight_layout()
        made.append(fig)
    return made


def _positive(value: Any) -> float:
    return float(value) if _ok(value) and value > 0 else math.nan


def activations(records: Sequence[dict[str, Any]]) -> list[plt.Figure]:
    """Per activation layer: mean ± std of the outputs; and the dead (ReLU) or saturated
    (sigmoid/tanh) fraction, over the sampled steps."""
    names: list[str] = []
    for r in records:
        names += [n for n in r["layers"] if n not in names]
    steps = [r["step"] for r in records]
    (fig_a, left), (fig_b, right) = plt.subplots(figsize=PANEL), plt.subplots(figsize=PANEL)
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        stats = [r["layers"].get(name, {}) for r in records]
        kind = next((s["kind"] for s in stats if "kind" in s), "")
        mean = np.array(_finite([s.get("mean", math.nan) for s in stats]))
        std = np.array(_finite([s.get("std", math.nan) for s in stats]))
        left.plot(steps, mean, color=colour, label=f"{name} ({kind})")
        left.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.12)
        frac_key = "dead" if any("dead" in s for s in stats) else "saturated"
        frac = _finite([s.get(frac_key, math.nan) for s in stats])
        if any(math.isfinite(v) for v in frac):
            right.plot(steps, frac, color=colour, label=f"{name} {frac_key}")
    left.set(title="activation mean ± std", xlabel="step")
    right.set(title="dead (ReLU) / saturated fraction", xlabel="step", ylim=(-0.02, 1.02))
    for fig, ax in ((fig_a, left), (fig_b, right)):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=7)
        fig.tight_layout()
    return [fig_a, fig_b]


def lr_range_test(data: dict[str, Any]) -> plt.Figure:
    """Loss against learning rate for every seed of the range test, suggestions marked."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for i, curve in enumerate(data.get("curves") or []):
        ax.plot(
            curve["lrs"],
            _finite(curve["losses"]),
            color=COLOURS[i % len(COLOURS)],
            linewidth=1,
            alpha=0.8,
            label=f"seed {curve.get('seed', i)}",
        )
    styles = {"steepest": ":", "minimum_div_10": "--", "minimum": "-."}
    for name, suggestion in (data.get("suggestions") or {}).items():
        value = suggestion.get("geomean")
        if _ok(value):
            ax.axvline(
                value,
                color="black",
                linestyle=styles.get(name, "-"),
                linewidth=0.9,
                label=f"{name} {value:.2g}",
            )
    recipe_lr = data.get("recipe_lr")
    if _ok(recipe_lr):
        ax.axvline(recipe_lr, color="#c62828", linewidth=1.2, label=f"recipe lr {recipe_lr:g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="LR range test")
    losses = [v for c in data.get("curves") or [] for v in _finite(c["losses"]) if v == v]
    if losses:
        low, high = min(losses), np.percentile(losses, 90)
        ax.set_ylim(low - 0.05 * abs(high - low), high + 0.3 * abs(high - low) + 1e-9)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return fig


def confusion(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> plt.Figure:
    """Confusion matrix as counts, each row coloured by its share of the true class."""
    n = len(classes)
    matrix = np.zeros((n, n), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[int(t), int(p)] += 1
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(6.5, 2.4 + 0.3 * n)
    fig, ax = plt.subplots(figsize=(size, size * 0.86))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if share[i, j] > 0.6 else "black",
                    )
    labels = [str(c)[:12] for c in classes]
    ticks = range(n) if n <= 30 else range(0, n, max(1, n // 15))
    ax.set_xticks(list(ticks), [labels[i] for i in ticks], rotation=45 if n > 6 else 0)
    ax.set_yticks(list(ticks), [labels[i] for i in ticks])
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix (accuracy {accuracy:.4f})")
    fig.tight_layout()
    return fig


def residuals(y_true: Sequence[float], y_pred: Sequence[float]) -> list[plt.Figure]:
    """Predicted against true values; and residuals against predictions."""
    t, p = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    (fig_a, left), (fig_b, right) = plt.subplots(figsize=PANEL), plt.subplots(figsize=PANEL)
    left.scatter(t, p, s=8, alpha=0.6, color=COLOURS[0])
    low, high = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    left.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--")
    left.set(xlabel="true", ylabel="predicted", title="predicted vs true")
    right.scatter(p, p - t, s=8, alpha=0.6, color=COLOURS[1])
    right.axhline(0, color="black", linewidth=0.8)
    rmse = float(np.sqrt(np.mean((p - t) ** 2)))
    right.set(xlabel="predicted", ylabel="predicted − true", title=f"residuals (RMSE {rmse:.4g})")
    fig_a.tight_layout()
    fig_b.tight_layout()
    return [fig_a, fig_b]


@dataclass(frozen=True)
class Effect:
    """One row of a forest plot: an effect and its 95 % interval on two splits."""

    name: str
    verdict: str
    val: tuple[float, float, float] | None  # mean, ci_low, ci_high
    test: tuple[float, float, float] | None


def forest(effects: Sequence[Effect], metric: str, title: str) -> plt.Figure:
    """Effect and 95 % confidence interval per change: validation (judges) and test."""
    fig, ax = plt.subplots(figsize=(5.8, 0.6 * len(effects) + 1.7))
    ys = np.arange(len(effects))[::-1]
    for y, e in zip(ys, effects, strict=True):
        colour = VERDICT_COLOURS.get(e.verdict, "#757575")
        for (split, interval), dy, marker in (
            (("val", e.val), 0.13, "o"),
            (("test", e.test), -0.13, "s"),
        ):
            if interval is None or not all(_ok(v) for v in interval):
                continue
            mean, low, high = interval
            ax.errorbar(
                mean,
                y + dy,
                xerr=[[mean - low], [high - mean]],
                fmt=marker,
                color=colour,
                mfc=colour if split == "val" else "white",
                capsize=3,
                markersize=5,
            )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ys, [e.name for e in effects])
    ax.set_ylim(-0.7, len(effects) - 0.3)
    ax.set_xlabel(f"effect on {metric} (paired difference, 95% CI)")
    ax.errorbar([], [], fmt="o", color="#555", label="validation (judges)")
    ax.errorbar([], [], fmt="s", color="#555", mfc="white", label="test")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, borderaxespad=0.2)
    fig.suptitle(title, x=0.98, y=0.99, ha="right", fontsize=9, color="#555")
    fig.tight_layout()
    return fig


def per_seed(arms: Sequence[tuple[str, Sequence[float]]], seeds: Sequence[int], metric: str):
    """Each arm's value at each seed, the same seed joined across arms (pairing)."""
    fig, ax = plt.subplots(figsize=(5.8, 3.2))
    xs = np.arange(len(arms))
    for j, seed in enumerate(seeds):
        values = [_finite(v)[j] if j < len(v) else math.nan for _, v in arms]
        ax.plot(
            xs,
            values,
            marker="o",
            color=COLOURS[j % len(COLOURS)],
            alpha=0.75,
            linewidth=0.8,
            label=f"seed {seed}",
        )
    ax.set_xticks(xs, [name for name, _ in arms], rotation=20 if len(arms) > 4 else 0)
    ax.set(ylabel=metric, title=f"{metric} per seed and arm")
    ax.legend(loc="best", ncol=min(5, len(seeds)))
    fig.tight_layout()
    return fig


def overlay(
    runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], keys: Sequence[str]
) -> plt.Figure:
    """One panel per history key, one line per run."""
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for i, (name, rows) in enumerate(runs):
            values = _finite([r.get(key, math.nan) for r in rows])
            ax.plot(
                [r["epoch"] for r in rows],
                values,
                marker="o",
                markersize=3,
                color=COLOURS[i % len(COLOURS)],
                label=name,
            )
        ax.set(title=key, xlabel="epoch")
    axes[0][0].legend(loc="best")
    fig.tight_layout()
    return fig
