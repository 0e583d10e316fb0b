"""A compression result (compression.json) as a console table and an accuracy-vs-latency
PNG with the Pareto front of the candidates tried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

ROWS = (
    ("test accuracy", "test_accuracy", "{:.4f}"),
    ("val accuracy", "val_accuracy", "{:.4f}"),
    ("parameters", "params", "{:,}"),
    ("non-zero parameters", "nonzero_params", "{:,}"),
    ("file size (bytes)", "size_bytes", "{:,}"),
    ("as CSR (bytes)", "sparse_size_bytes", "{:,}"),
    ("MACs per sample", "macs", "{:,}"),
    ("latency batch 1 (ms)", "latency_ms_b1", "{:.3f}"),
    ("latency batch 256 (ms)", "latency_ms_b256", "{:.3f}"),
)


def _cell(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def compression_table(result: dict[str, Any]) -> Table:
    """Before / after side by side, with the ratio of each figure."""
    before, after = result["before"], result["after"]
    table = Table(title=f"compress {result['method']} ({result['threads']} threads)")
    for col in ("", "before", "after", "after / before"):
        table.add_column(col, justify="left" if not col else "right")
    for label, key, fmt in ROWS:
        b, a = before.get(key), after.get(key)
        ratio = f"{a / b:.3f}" if isinstance(a, int | float) and b else "—"
        table.add_row(label, _cell(b, fmt), _cell(a, fmt), ratio)
    return table


def pareto_front(
    points: list[dict[str, Any]], cost: str = "latency_ms_b256"
) -> list[dict[str, Any]]:
    """The points no other point beats on both accuracy (higher) and `cost` (lower:
    batch-256 latency by default, or size_bytes, params…)."""
    front = []
    for p in points:
        dominated = any(
            q["test_accuracy"] >= p["test_accuracy"]
            and q[cost] <= p[cost]
            and (q["test_accuracy"], q[cost]) != (p["test_accuracy"], p[cost])
            for q in points
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p[cost])


def tradeoff_chart(result: dict[str, Any], path: Path) -> Path:
    """Test accuracy against batch-256 latency: the source, every candidate, the front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [{"label": "source", **result["before"]}] + [
        {"label": c["method"], **c["measurement"]} for c in result["candidates"]
    ]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for p in points:
        chosen = p["label"] == result["method"]
        ax.scatter(p["latency_ms_b256"], p["test_accuracy"], s=60 if chosen else 36,
                   color="#c62828" if p["label"] == "source" else "#1565c0",
                   edgecolor="black" if chosen else "none", zorder=3)  # fmt: skip
        ax.annotate(p["label"], (p["latency_ms_b256"], p["test_accuracy"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    front = pareto_front(points)
    ax.plot([p["latency_ms_b256"] for p in front], [p["test_accuracy"] for p in front],
            color="#9e9e9e", linestyle="--", zorder=2, label="Pareto front")  # fmt: skip
    ax.set_xlabel("CPU latency at batch 256 (ms, median)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"compression of {Path(result['source']).name}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
