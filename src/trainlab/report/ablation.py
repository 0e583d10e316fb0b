"""Ablation results as a console table and a PNG chart of effects with confidence bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:+.{digits}f}"


def ablation_table(result: dict[str, Any]) -> Table:
    """A ranked rich table: effect, interval, p-values, verdict, cost."""
    base = result["baseline"]["summary"]
    table = Table(
        title=f"ablation {result['study']} — {result['mode']}, {len(result['seeds'])} seeds, "
        f"{result['metric']} (baseline {base['mean']:.4f} ± {base['std']:.4f})"
    )
    for col in (
        "technique",
        "verdict",
        "effect",
        "95% CI",
        "p (t)",
        "p (perm)",
        "with",
        "test effect",
        "time ×",
        "params",
    ):
        table.add_column(col, justify="left" if col in ("technique", "verdict") else "right")
    colours = {"helps": "green", "hurts": "red"}
    for row in result["effects"]:
        e = row["effect"] or {}
        w = row["with"] or {}
        colour = colours.get(row["verdict"], "yellow")
        params = row["parameters_with"]
        delta = (params - row["parameters_without"]) if params and row["parameters_without"] else 0
        table.add_row(
            row["technique"],
            f"[{colour}]{row['verdict']}[/]",
            _fmt(e.get("mean")),
            f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]" if e else "—",
            f"{e['p_value']:.3f}" if e else "—",
            f"{e['p_value_permutation']:.3f}" if e else "—",
            f"{w.get('mean', float('nan')):.4f}" if w else "—",
            _fmt(row["test_effect"]),
            f"{row['time_ratio']:.2f}" if row["time_ratio"] else "—",
            f"{delta:+d}" if delta else "=",
        )
    return table


def ablation_chart(result: dict[str, Any], path: Path) -> Path:
    """Horizontal bars of each technique's effect with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["effects"] if r["effect"]]
    names = [r["technique"] for r in rows][::-1]
    means = [r["effect"]["mean"] for r in rows][::-1]
    lows = [r["effect"]["mean"] - r["effect"]["ci_low"] for r in rows][::-1]
    highs = [r["effect"]["ci_high"] - r["effect"]["mean"] for r in rows][::-1]
    colours = {"helps": "#2e7d32", "hurts": "#c62828"}
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.6))
    ax.barh(
        names,
        means,
        xerr=[lows, highs],
        capsize=4,
        color=[colours.get(r["verdict"], "#9e9e9e") for r in rows][::-1],
    )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"effect on {result['metric']} (paired, 95% CI)")
    ax.set_title(f"{result['study']}: {result['mode']}, {len(result['seeds'])} seeds")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
