"""The report of an ablation study (`trainlab ablate`): which techniques helped, by how
much, with what confidence, at what cost — from the study's results.json.

The effects table and forest plot take the rows results.json holds (`effects`), and the
doctor's applied ablation, whose rows have the same fields, reuses them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from trainlab.errors import RunError
from trainlab.report import figures
from trainlab.report.page import Page, badge, cards, esc, kv, number, para, signed, table


def _interval(stats: dict[str, Any] | None) -> tuple[float, float, float] | None:
    if not stats or not all(
        isinstance(stats.get(k), int | float) for k in ("mean", "ci_low", "ci_high")
    ):
        return None
    return (stats["mean"], stats["ci_low"], stats["ci_high"])


def _test_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The test-split paired difference of a row (ablate: test_paired; doctor: test)."""
    return row.get("test_paired") or row.get("test")


def forest_figure(page: Page, rows: list[dict[str, Any]], metric: str, title: str) -> str:
    """The effects forest plot of `rows`, inlined (empty when no row has an effect)."""
    effects = [
        figures.Effect(
            r["technique"], r["verdict"], _interval(r.get("effect")), _interval(_test_of(r))
        )
        for r in rows
    ]
    if not any(e.val or e.test for e in effects):
        return ""
    fig = figures.forest(effects, metric, title)
    return page.figure(fig, "filled: validation (judges the verdict); open: test", "effects")


def _ci(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("ci_low") is None:
        return "—"
    return f"[{signed(stats['ci_low'])}, {signed(stats['ci_high'])}]"


def _p(stats: dict[str, Any] | None, key: str) -> str:
    value = (stats or {}).get(key)
    return number(value, 3) if isinstance(value, int | float) else "—"


def effects_table(rows: list[dict[str, Any]]) -> str:
    """One line per change: verdict, effect and CI, p-values, test twin, costs."""
    lines = []
    for r in rows:
        e, t = r.get("effect") or {}, _test_of(r) or {}
        params_with, params_without = r.get("parameters_with"), r.get("parameters_without")
        delta = params_with - params_without if params_with and params_without else None
        what = r.get("change") or ""
        name = esc(r["technique"]) + (f'<br><span class="small">{esc(what)}</span>' if what else "")
        lines.append(
            (
                name,
                badge(r["verdict"]),
                _effect_cell(e),
                f'{_p(e, "p_value")}<br><span class="small">perm. '
                f"{_p(e, 'p_value_permutation')}</span>",
                _effect_cell(t),
                badge(t["verdict"]) if t.get("verdict") else "—",
                number(r.get("time_ratio"), 2) if r.get("time_ratio") else "—",
                f"{delta:+,}" if delta else "=",
            )
        )
    header = (
        "change",
        "verdict",
        "effect [95% CI]",
        "p (t-test)",
        "test effect [95% CI]",
        "test verdict",
        "time ×",
        "params Δ",
    )
    return table(header, lines, numeric=(2, 3, 4, 6, 7), raw=(0, 1, 2, 3, 4, 5))


def _effect_cell(stats: dict[str, Any]) -> str:
    """The mean difference over its interval, for a table cell."""
    return f'{signed(stats.get("mean"))}<br><span class="small">{_ci(stats)}</span>'


def read_results(folder: Path) -> dict[str, Any]:
    """results.json of an ablation study; RunError when it is unreadable."""
    path = Path(folder) / "results.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RunError(
            f"'{path}' cannot be read ({type(exc).__name__}); re-run the same "
            "`trainlab ablate` command to rebuild it from the study's runs"
        ) from None


def _arms(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    base = result.get("baseline") or {}
    return [(base.get("variant", "baseline"), base), *(result.get("arms") or {}).items()]


def per_seed_section(page: Page, result: dict[str, Any]) -> None:
    """Every arm's value at every seed (validation and test), with the paired chart."""
    seeds, metric = result.get("seeds") or [], result.get("metric", "metric")
    arms = _arms(result)
    header = ("arm", *(f"seed {s}" for s in seeds), "mean ± std", "test mean", "statuses")
    rows = []
    for name, arm in arms:
        values, summary = arm.get("values") or [], arm.get("summary") or {}
        rows.append(
            (
                name,
                *(number(v) for v in values),
                f"{number(summary.get('mean'))} ± {number(summary.get('std'))}",
                number((arm.get("test") or {}).get("mean")),
                ", ".join(f"{n} {s}" for s, n in Counter(arm.get("statuses") or []).items()),
            )
        )
    chart = ""
    if seeds and any(arm.get("values") for _, arm in arms):
        fig = figures.per_seed([(n, a.get("values") or []) for n, a in arms], seeds, metric)
        chart = page.figure(
            fig, "each line is one seed: the pairs the statistics compare", "per-seed values"
        )
    test_rows = [(name, *(number(v) for v in arm.get("test_values") or [])) for name, arm in arms]
    test_metric = "test_" + metric.removeprefix("val_")
    page.add(
        "Per-seed values",
        chart,
        f"<h3>{esc(metric)} (validation)</h3>",
        table(header, rows, numeric=range(1, len(seeds) + 3)),
        f"<h3>{esc(test_metric)}</h3>",
        table(("arm", *(f"seed {s}" for s in seeds)), test_rows, numeric=range(1, len(seeds) + 1)),
    )


def costs_section(page: Page, result: dict[str, Any]) -> None:
    """Training time and size of every arm."""
    rows = [
        (name, number(arm.get("fit_seconds"), 3), number(arm.get("parameters")))
        for name, arm in _arms(result)
    ]
    page.add("Costs", table(("arm", "mean fit seconds", "parameters"), rows, numeric=(1, 2)))


def build_ablation_page(folder: str | Path) -> Page:
    """The whole report of an ablation study folder."""
    folder = Path(folder)
    result = read_results(folder)
    spec = json.loads((folder / "study.json").read_text(encoding="utf-8"))
    seeds, metric = result.get("seeds") or [], result.get("metric", "")
    rows = result.get("effects") or []
    base = (result.get("baseline") or {}).get("summary") or {}
    page = Page(
        f"Ablation {result.get('study', folder.name)}",
        f"{result.get('mode')} · {len(seeds)} seeds · judged by {metric}",
        kind="ablation",
    )
    verdicts = [f"{badge(r['verdict'])} <b>{esc(r['technique'])}</b>" for r in rows]
    page.add(
        "Summary",
        cards(
            [
                ("mode", result.get("mode")),
                ("seeds", len(seeds)),
                (f"baseline {metric}", f"{number(base.get('mean'))} ± {number(base.get('std'))}"),
                (
                    "runs trained / reused",
                    f"{result.get('runs_trained', 0)} / {result.get('runs_reused', 0)}",
                ),
            ]
        ),
        f"<p>{' &nbsp; '.join(verdicts)}</p>" if verdicts else "",
        kv(
            [
                ("changes", ", ".join(spec.get("changes") or [])),
                ("seeds", ", ".join(map(str, seeds))),
                ("recipe hash", spec.get("recipe_hash", "")),
                ("study folder", str(folder)),
            ]
        ),
    )
    title = f"{result.get('study', '')}: {result.get('mode')}, {len(seeds)} seeds"
    page.add(
        "Effects",
        forest_figure(page, rows, metric, title),
        effects_table(rows),
        para(
            "Effect: the mean paired difference (with − without, same seeds) of "
            f"{metric}; 95% CI and p from a paired t-test, p (perm.) from a sign-flip "
            "permutation test. The verdict uses the validation split only; the test split "
            "is reported beside it.",
            muted=True,
        ),
    )
    per_seed_section(page, result)
    costs_section(page, result)
    return page
