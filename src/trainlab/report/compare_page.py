"""Several runs on one page (`trainlab report --compare RUN RUN …`): their learning curves
overlaid, final metrics side by side, and the recipe keys in which they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainlab.errors import RunError
from trainlab.report import figures
from trainlab.report.page import Page, badge, number, para, table
from trainlab.report.run_page import RunFiles, read_run


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested recipe as dotted keys (`train.lr`); lists (techniques…) stay whole."""
    if not isinstance(value, dict):
        return {prefix: value}
    found: dict[str, Any] = {}
    for key, item in value.items():
        found.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return found


def _labels(runs: Sequence[RunFiles]) -> list[str]:
    """Each run's name, made unique with its parent folder when two share a name."""
    names = [r.name for r in runs]
    return [f"{r.path.parent.name}/{r.name}" if names.count(r.name) > 1 else r.name for r in runs]


def differences(runs: Sequence[RunFiles]) -> list[tuple[str, list[str]]]:
    """The recipe keys whose values are not the same in every run."""
    flat = [flatten(r.recipe) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    missing = object()
    rows = []
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, ["—" if v is missing else str(v) for v in values]))
    return rows


def build_compare_page(paths: Sequence[str | Path]) -> Page:
    """Curves overlaid and metrics side by side for two or more run directories."""
    if len(paths) < 2:
        raise RunError("--compare needs at least two run directories")
    runs = [read_run(p) for p in paths]
    labels = _labels(runs)
    page = Page(f"Compare {len(runs)} runs", " · ".join(labels), kind="compare")
    rows = [
        (
            label,
            badge(r.info.get("status", "?")),
            r.info.get("epochs_completed", "—"),
            number(r.info.get("parameters")),
            number((r.info.get("timings") or {}).get("fit_seconds"), 2),
            str(r.path),
        )
        for label, r in zip(labels, runs, strict=True)
    ]
    page.add(
        "Runs",
        table(
            ("run", "status", "epochs", "parameters", "fit seconds", "folder"),
            rows,
            numeric=(2, 3, 4),
            raw=(1,),
        ),
    )
    keys = list(dict.fromkeys(k for r in runs for k in r.metrics))
    metric_rows = []
    for key in keys:
        values = [r.metrics.get(key) for r in runs]
        metric_rows.append((key, *(number(v) for v in values)))
    page.add(
        "Final metrics", table(("metric", *labels), metric_rows, numeric=range(1, len(labels) + 1))
    )
    histories = [(label, r.history) for label, r in zip(labels, runs, strict=True) if r.history]
    if histories:
        metric = figures.metric_name([row for _, h in histories for row in h])
        panels = ["val_loss", "train_loss", *([f"val_{metric}"] if metric else [])]
        if len({row.get("lr") for _, h in histories for row in h}) > 1:
            panels.append("lr")
        fig = figures.overlay(histories, panels)
        page.add("Learning curves", page.figure(fig, "one line per run", "overlaid curves"))
    diff = differences(runs)
    page.add(
        "Recipe differences",
        table(("key", *labels), [(k, *v) for k, v in diff])
        if diff
        else para("The recipes are the same (seeds included)."),
    )
    return page
