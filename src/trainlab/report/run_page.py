"""The report of one run: what was trained, how it went, what it reached.

Everything comes from the run directory (recipe.yaml, run.json, metrics.json,
history.jsonl, data.json, baselines.json, diagnostics/*.json, lr_find/): the page is
drawn from the files alone. Predictions (for the confusion matrix or the residual plot)
are not stored in a run; the caller computes them and passes them in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import yaml

from trainlab.errors import RunError
from trainlab.report import figures
from trainlab.report.page import Page, badge, cards, esc, grid, kv, number, para, pre, table
from trainlab.store.rundir import RunDir


@dataclass(frozen=True)
class Predictions:
    """A saved run's predictions on one split, with the true targets.

    `kind` is the run's target kind (multiclass, binary, regression); for classification
    `y_true`/`y_pred` are class indices into `classes`.
    """

    split: str
    kind: str
    y_true: list[Any]
    y_pred: list[Any]
    classes: list[str] = field(default_factory=list)


@dataclass
class RunFiles:
    """The contents of one run directory, read once."""

    path: Path
    info: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    data: dict[str, Any]
    recipe_text: str
    recipe: dict[str, Any]
    baselines: dict[str, Any]

    @property
    def name(self) -> str:
        """The run's name (its folder's name when run.json does not say)."""
        return str(self.info.get("name") or self.path.name)

    def optional_json(self, *names: str) -> Any:
        """The first of `names` (paths relative to the run) that exists, parsed; else None."""
        for name in names:
            if (self.path / name).is_file():
                return RunDir(self.path).read_json(name)
        return None


def read_run(path: str | Path) -> RunFiles:
    """Read a run directory; RunError naming the folder when it holds no run."""
    rd = RunDir(path)
    if not rd.exists():
        raise RunError(
            f"'{rd.path}' holds no run.json: it is not a trainlab run directory (train one "
            "with `trainlab train RECIPE --out DIR`)"
        )
    text = rd.recipe.read_text(encoding="utf-8") if rd.recipe.is_file() else ""
    try:
        recipe = yaml.safe_load(text) or {} if text else {}
    except yaml.YAMLError:
        recipe = {}
    return RunFiles(
        path=rd.path,
        info=rd.info(),
        metrics=rd.read_json("metrics.json", default={}),
        history=rd.history(),
        data=rd.read_json("data.json", default={}),
        recipe_text=text,
        recipe=recipe if isinstance(recipe, dict) else {},
        baselines=rd.read_json("baselines.json", default={}),
    )


def _name_of(value: Any) -> str:
    return str(value.get("name", "")) if isinstance(value, dict) else str(value or "")


def summary_section(page: Page, run: RunFiles) -> None:
    """Headline cards and the facts of the run."""
    info, recipe = run.info, run.recipe
    best = figures.best_epoch(run.history)
    test = next((k for k in ("test_accuracy", "test_r2", "test_rmse") if k in run.metrics), None)
    headline = [("status", info.get("status", "?")), ("epochs", info.get("epochs_completed"))]
    if best is not None:
        headline.append(("best epoch", best))
    if test:
        headline.append((test, number(run.metrics[test])))
    if info.get("parameters"):
        headline.append(("parameters", number(info["parameters"])))
    seconds = (info.get("timings") or {}).get("fit_seconds")
    if seconds is not None:
        headline.append(("fit seconds", number(float(seconds), 2)))
    data = recipe.get("data") or {}
    facts = [
        ("recipe", recipe.get("name") or info.get("recipe_name", "")),
        ("description", recipe.get("description", "")),
        ("dataset", _name_of(data.get("dataset"))),
        ("model", _name_of(recipe.get("model"))),
        ("techniques", ", ".join(_name_of(t) for t in recipe.get("techniques") or []) or "none"),
        ("seed", info.get("seed")),
        ("stop", f"{info.get('stop_reason', '')} {info.get('stop_message', '')}".strip()),
        ("study", info.get("study") or ""),
        ("trained from", info.get("source_run") or ""),
        ("created", info.get("created_at", "")),
        ("finished", info.get("finished_at", "")),
        ("run directory", str(run.path)),
    ]
    page.add(
        "Summary",
        cards((k, v) for k, v in headline if v is not None),
        kv((k, v) for k, v in facts if v not in ("", None)),
    )


def metrics_section(page: Page, run: RunFiles) -> None:
    """Final validation and test metrics side by side, then the baselines when fitted."""
    names: list[str] = []
    for key in run.metrics:
        base = key.split("_", 1)[1] if key.startswith(("val_", "test_")) else key
        if base not in names:
            names.append(base)
    rows = [
        (n, number(run.metrics.get(f"val_{n}")), number(run.metrics.get(f"test_{n}")))
        for n in names
    ]
    parts = [table(("metric", "validation", "test"), rows, numeric=(1, 2))]
    fitted = {k: v for k, v in run.baselines.items() if isinstance(v, dict)}
    if fitted:
        keys = [k for k in run.metrics if k.startswith("test_")]
        header = ("model", *(k.removeprefix("test_") for k in keys), "fit seconds")
        lines = [
            (
                "network",
                *(number(run.metrics.get(k)) for k in keys),
                number((run.info.get("timings") or {}).get("fit_seconds")),
            )
        ]
        for name, b in fitted.items():
            if "error" in b:
                lines.append((name, *(["—"] * len(keys)), f"failed: {b['error']}"))
            else:
                lines.append(
                    (name, *(number(b.get(k)) for k in keys), number(b.get("fit_seconds")))
                )
        parts += [
            "<h3>Network vs baselines (test split)</h3>",
            table(header, lines, numeric=range(1, len(header))),
        ]
    page.add("Final metrics", *parts)


def curves_section(page: Page, run: RunFiles) -> None:
    """Learning curves with the best epoch and the stop marked."""
    if not run.history:
        page.add("Learning curves", para("no per-epoch history in this run", muted=True))
        return
    best = figures.best_epoch(run.history)
    stop = run.info.get("stop_reason")
    figs = figures.learning_curves(run.history, best, stop)
    note = f"Best validation epoch: {best}." if best is not None else ""
    lrs = {r.get("lr") for r in run.history}
    if len(lrs) == 1 and None not in lrs:
        note += f" Learning rate constant at {lrs.pop():g}."
    if stop and stop != "completed":
        note += f" Stopped at epoch {run.history[-1]['epoch']}: {stop}"
        note += f" — {run.info['stop_message']}" if run.info.get("stop_message") else ""
    page.add(
        "Learning curves",
        page.panels(figs, alt="learning curves"),
        para(note.strip()) if note else "",
    )


def fit_section(page: Page, run: RunFiles) -> None:
    """The fit diagnosis (bias/variance verdict) of the history, as the doctor reads it."""
    from trainlab.diagnose.fit import analyze_fit

    if not any("val_loss" in r for r in run.history):
        return
    d = analyze_fit(run.history)
    numbers = [
        ("metric", d.metric),
        ("training error (eval mode)", number(d.train_error)),
        ("validation error", number(d.val_error)),
        ("reference error", number(d.reference_error)),
        ("avoidable bias", number(d.bias)),
        ("variance (val − train)", number(d.variance)),
        ("validation loss above its best", number(d.val_loss_rise)),
        ("train loss trend / epoch", number(d.train_trend)),
        ("val loss trend / epoch", number(d.val_trend)),
    ]
    page.add(
        "Fit diagnosis",
        f"<p>{badge(d.verdict)} {esc(d.reason)}</p>",
        kv(numbers),
        para(
            "Errors are fractions (1 − accuracy or 1 − R²); trends are the relative "
            "decrease per epoch over the last 3 epochs.",
            muted=True,
        ),
    )


def gradient_section(page: Page, run: RunFiles) -> None:
    """Gradient flow (when the run had gradient_monitor) with a per-layer summary."""
    data = run.optional_json("diagnostics/gradient_flow.json")
    if not data or not data.get("records"):
        return
    rows = []
    for i, name in enumerate(data["layers"]):
        grads = [r["grad"][i] for r in data["records"] if _finite(r["grad"][i])]
        ups = [r["update"][i] for r in data["records"] if _finite((r.get("update") or [None])[i])]
        rows.append(
            (
                name,
                number(median(grads)) if grads else "—",
                number(grads[-1]) if grads else "—",
                number(median(ups)) if ups else "—",
            )
        )
    page.add(
        "Gradient flow",
        page.panels(figures.gradient_flow(data), alt="gradient flow"),
        para(f"Sampled every {data.get('every')} optimizer steps.", muted=True),
        table(
            ("layer", "median grad norm", "last grad norm", "median update/weight"),
            rows,
            numeric=(1, 2, 3),
        ),
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def activation_section(page: Page, run: RunFiles) -> None:
    """Activation statistics (when the run had activation_stats): the last sample per layer."""
    data = run.optional_json("diagnostics/activations.json")
    records = (data or {}).get("records") or []
    if not records:
        return
    last = records[-1]
    rows = [
        (
            name,
            s.get("kind", ""),
            number(s.get("mean")),
            number(s.get("std")),
            number(s.get("dead")) if "dead" in s else "—",
            number(s.get("saturated")) if "saturated" in s else "—",
        )
        for name, s in last["layers"].items()
    ]
    page.add(
        "Activation statistics",
        page.panels(figures.activations(records), alt="activation statistics"),
        f"<h3>Last sample (step {esc(last.get('step'))})</h3>",
        table(("layer", "kind", "mean", "std", "dead", "saturated"), rows, numeric=(2, 3, 4, 5)),
    )


def lr_section(page: Page, data: dict[str, Any] | None) -> None:
    """The LR range test, when one was run for this run (lr_find/lr_find.json)."""
    if not data or not data.get("curves"):
        return
    rows = [
        (
            name,
            number(s.get("geomean")),
            ", ".join(number(v) for v in s.get("values") or []),
            number(s.get("spread"), 2),
        )
        for name, s in (data.get("suggestions") or {}).items()
    ]
    page.add(
        "LR range test",
        page.figure(figures.lr_range_test(data), "loss while the learning rate grows", "LR test"),
        table(("suggestion", "geometric mean", "per seed", "max/min"), rows, numeric=(1, 3)),
        ""
        if data.get("informative", True)
        else para("The loss never fell in most range tests: the suggestions mean nothing."),
    )


def predictions_section(page: Page, preds: Predictions | None) -> None:
    """Confusion matrix for classification, residual plot for regression."""
    if preds is None or not preds.y_true:
        return
    title = f"Predictions on the {preds.split} split"
    if preds.kind == "regression":
        figs = figures.residuals(preds.y_true, preds.y_pred)
        page.add(
            title,
            page.panels(figs, alt="residuals"),
            para(f"{len(preds.y_true)} samples.", muted=True),
        )
        return
    classes = preds.classes or [str(i) for i in range(max(preds.y_true + preds.y_pred) + 1)]
    rows = []
    for c, name in enumerate(classes):
        support = sum(1 for t in preds.y_true if t == c)
        predicted = sum(1 for p in preds.y_pred if p == c)
        hit = sum(1 for t, p in zip(preds.y_true, preds.y_pred, strict=True) if t == p == c)
        rows.append(
            (
                name,
                number(hit / predicted if predicted else math.nan),
                number(hit / support if support else math.nan),
                support,
            )
        )
    matrix = page.figure(
        figures.confusion(preds.y_true, preds.y_pred, classes),
        f"{len(preds.y_true)} samples",
        "confusion matrix",
    )
    per_class = table(("class", "precision", "recall", "support"), rows, numeric=(1, 2, 3))
    page.add(title, grid(matrix, f"<div><h3>Per class</h3>{per_class}</div>"))


def exports_section(page: Page, run: RunFiles) -> None:
    """The run's exports (`trainlab export`: RUN/export/FORMAT/export.json) and their parity."""
    rows = []
    for marker in sorted(run.path.glob("export/*/export.json")):
        try:
            meta = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        parity = meta.get("parity") or {}
        metric = parity.get("metric", "")
        rows.append(
            (
                meta.get("format", marker.parent.name),
                meta.get("model_file", ""),
                number(meta.get("size_bytes")),
                meta.get("runtime", ""),
                badge("passed" if parity.get("passed") else "failed"),
                f"{metric} {number(parity.get('metric_torch'))} / "
                f"{number(parity.get('metric_export'))}",
                number(parity.get("max_abs_diff")),
                str(marker.parent),
            )
        )
    if rows:
        header = (
            "format",
            "file",
            "bytes",
            "runtime",
            "parity",
            "metric torch / export",
            "max abs diff",
            "folder",
        )
        page.add("Exports", table(header, rows, numeric=(2, 5, 6), raw=(4,)))


def timings_section(page: Page, run: RunFiles) -> None:
    """Where the time went: the run's timings and the per-epoch seconds."""
    timings = dict(run.info.get("timings") or {})
    epoch_seconds = [r["epoch_seconds"] for r in run.history if _finite(r.get("epoch_seconds"))]
    if epoch_seconds:
        timings["epoch seconds (min / median / max)"] = " / ".join(
            number(v, 3) for v in (min(epoch_seconds), median(epoch_seconds), max(epoch_seconds))
        )
    threads = run.info.get("threads") or {}
    if threads:
        timings["threads"] = f"{threads.get('threads')} ({threads.get('reason', '')})"
    page.add("Timings", kv((k, number(v, 4)) for k, v in timings.items()) if timings else "")


def recipe_section(page: Page, run: RunFiles) -> None:
    """The resolved recipe and the environment it ran in."""
    env = dict(run.info.get("environment") or {})
    versions = env.pop("versions", {}) or {}
    parts = [pre(run.recipe_text or "(no recipe.yaml)", tall=True)]
    if run.info.get("determinism"):
        env["determinism"] = json.dumps(run.info["determinism"])
    page.add("Recipe", *parts)
    page.add(
        "Environment",
        kv(env) if env else "",
        "<h3>Versions</h3>" + kv(versions) if versions else "",
    )


def build_run_page(path: str | Path, predictions: Predictions | None = None) -> Page:
    """The whole report of one run directory."""
    run = read_run(path)
    status = run.info.get("status", "")
    subtitle = " · ".join(
        str(x) for x in (run.info.get("recipe_name"), status, run.info.get("finished_at")) if x
    )
    page = Page(f"Run {run.name}", subtitle, kind="run")
    add_run_sections(page, run, predictions)
    return page


def add_run_sections(page: Page, run: RunFiles, predictions: Predictions | None) -> None:
    """Every section a run has data for, in reading order."""
    summary_section(page, run)
    metrics_section(page, run)
    curves_section(page, run)
    fit_section(page, run)
    predictions_section(page, predictions)
    gradient_section(page, run)
    activation_section(page, run)
    lr_section(page, run.optional_json("lr_find/lr_find.json", "lr_find.json"))
    exports_section(page, run)
    timings_section(page, run)
    recipe_section(page, run)
