"""The report of a compressed run (`trainlab compress`): accuracy against latency and size
for the source and every candidate tried, the before/after table, the verdict against the
same small architecture trained from scratch — then the run itself, like any run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from trainlab.report import run_page
from trainlab.report.compression import ROWS, pareto_front
from trainlab.report.figures import PANEL, plt
from trainlab.report.page import Page, badge, cards, esc, kv, number, para, signed, table
from trainlab.store.rundir import RunDir

AXES = (
    ("latency_ms_b256", "CPU latency at batch 256 (ms, median)"),
    ("size_bytes", "file size (bytes)"),
)


def _points(result: dict[str, Any]) -> list[dict[str, Any]]:
    points = [{"label": "source", **result.get("before", {})}]
    points += [{"label": c["method"], **c["measurement"]} for c in result.get("candidates") or []]
    keys = ("test_accuracy", *(k for k, _ in AXES))
    return [p for p in points if all(isinstance(p.get(k), int | float) for k in keys)]


def tradeoff_figures(result: dict[str, Any]) -> list[Any]:
    """Test accuracy against latency, and against size: source, candidates, front, choice."""
    points = _points(result)
    made = []
    for cost, label in AXES:
        fig, ax = plt.subplots(figsize=PANEL)
        for p in points:
            chosen = p["label"] == result.get("method")
            ax.scatter(
                p[cost],
                p["test_accuracy"],
                s=60 if chosen else 34,
                zorder=3,
                color="#c62828" if p["label"] == "source" else "#1565c0",
                edgecolor="black" if chosen else "none",
            )
            ax.annotate(
                p["label"],
                (p[cost], p["test_accuracy"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        front = pareto_front(points, cost) if points else []
        ax.plot(
            [p[cost] for p in front],
            [p["test_accuracy"] for p in front],
            color="#9e9e9e",
            linestyle="--",
            zorder=2,
            label="Pareto front",
        )
        ax.set(xlabel=label, ylabel="test accuracy", title=f"accuracy vs {label.split(' (')[0]}")
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.legend(loc="lower right")
        fig.tight_layout()
        made.append(fig)
    return made


def before_after_table(result: dict[str, Any]) -> str:
    """Every measured figure before and after, with the ratio."""
    before, after = result.get("before") or {}, result.get("after") or {}
    rows = []
    for label, key, fmt in ROWS:
        b, a = before.get(key), after.get(key)
        ratio = (
            f"{a / b:.3f}"
            if isinstance(a, int | float) and isinstance(b, int | float) and b
            else "—"
        )
        rows.append(
            (label, "—" if b is None else fmt.format(b), "—" if a is None else fmt.format(a), ratio)
        )
    return table(("", "before", "after", "after / before"), rows, numeric=(1, 2, 3))


def scratch_section(page: Page, result: dict[str, Any]) -> None:
    """The compressed model against the same architecture trained from scratch."""
    scratch = result.get("vs_scratch")
    if not scratch:
        page.add(
            "Compressed vs trained from scratch",
            para(
                "Not measured: run `trainlab compress … --vs-scratch N` to train the "
                "small architecture from scratch over N seeds.",
                muted=True,
            ),
        )
        return
    d = scratch.get("difference") or {}
    facts = [
        ("compressed test accuracy", number(scratch.get("compressed_test"))),
        (
            "scratch test accuracy per seed",
            ", ".join(number(v) for v in scratch.get("scratch_test") or []),
        ),
        (
            "scratch mean ± std",
            f"{number((scratch.get('scratch') or {}).get('mean'))} ± "
            f"{number((scratch.get('scratch') or {}).get('std'))}",
        ),
        (
            "compressed − scratch",
            f"{signed(d.get('mean'))} [95% CI {signed(d.get('ci_low'))}, "
            f"{signed(d.get('ci_high'))}]",
        ),
        (
            "seeds / epochs from scratch",
            f"{scratch.get('seeds')} / {scratch.get('epochs_scratch')}",
        ),
    ]
    page.add(
        "Compressed vs trained from scratch",
        f"<p>{badge(scratch.get('verdict', ''))}</p>",
        kv(facts),
    )


def _ratio(before: dict[str, Any], after: dict[str, Any], key: str) -> str:
    b, a = before.get(key), after.get(key)
    ok = isinstance(a, int | float) and isinstance(b, int | float) and b
    return f"{a / b:.2f}×" if ok else "—"


def build_compress_page(path: str | Path, predictions: Any = None) -> Page:
    """The whole report of a compressed run directory."""
    run = run_page.read_run(path)
    result = RunDir(run.path).read_json("compression.json")
    before, after = result.get("before") or {}, result.get("after") or {}
    page = Page(
        f"Compressed run {run.name}",
        f"{result.get('method')} of {result.get('source')}",
        kind="compress",
    )

    page.add(
        "Summary",
        cards(
            [
                ("method", result.get("method")),
                (
                    "test accuracy",
                    f"{number(before.get('test_accuracy'))} → {number(after.get('test_accuracy'))}",
                ),
                ("size", _ratio(before, after, "size_bytes")),
                ("parameters", _ratio(before, after, "params")),
                ("speed-up (batch 256)", f"{number(result.get('speedup_b256'), 2)}×"),
            ]
        ),
        f"<p>target met: {badge('yes' if result.get('met_target') else 'no')} "
        f"(at most {esc(result.get('target_drop'))} {esc(result.get('selection_split', 'val'))} "
        "accuracy lost)</p>",
        kv(
            [
                ("source run", result.get("source")),
                ("threads measured", result.get("threads")),
                ("run directory", str(run.path)),
            ]
        ),
    )
    page.add(
        "Accuracy, latency and size",
        page.panels(tradeoff_figures(result), alt="trade-off"),
        para(
            "Source in red, candidates in blue, the chosen one outlined, the Pareto front dashed.",
            muted=True,
        ),
        "<h3>Before / after</h3>",
        before_after_table(result),
        *(para(n) for n in result.get("notes") or []),
    )
    scratch_section(page, result)
    run_page.metrics_section(page, run)
    run_page.predictions_section(page, predictions)
    run_page.recipe_section(page, run)
    return page
