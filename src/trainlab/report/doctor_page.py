"""The report of a `trainlab doctor` folder: the findings with their evidence, the
recommended changes, the ablation that tried them (with --apply), and the probe run's
curves, gradient flow and LR range test behind the findings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainlab.report import ablation_page, run_page
from trainlab.report.page import (
    Page,
    badge,
    cards,
    esc,
    kv,
    number,
    para,
    read_folder_json,
    table,
)


def read_report(folder: Path) -> dict[str, Any]:
    """report.json of a doctor folder; RunError when unreadable."""
    return read_folder_json(
        folder,
        "report.json",
        "run `trainlab doctor` again with the same --out to rewrite "
        "it",
    )


def _evidence(evidence: dict[str, Any]) -> str:
    items = [
        f"{esc(k)} = {esc(number(v) if isinstance(v, float) else v)}"
        for k, v in evidence.items()
        if not isinstance(v, dict | list)
    ]
    return f'<span class="small">{"; ".join(items)}</span>' if items else ""


def findings_section(page: Page, data: dict[str, Any]) -> None:
    """What the doctor found, each with the numbers that show it."""
    findings = data.get("findings") or []
    if not findings:
        page.add("Findings", para("No finding: nothing in the probe run raised an alarm."))
        return
    rows = [
        (
            f"<b>{esc(f['code'])}</b>",
            f'<span class="badge {_colour(f["severity"])}">{esc(f["severity"])}</span>',
            esc(f.get("message", "")),
            _evidence(f.get("evidence") or {}),
        )
        for f in findings
    ]
    page.add("Findings", table(("code", "severity", "message", "evidence"), rows, raw=(0, 1, 2, 3)))


def _colour(severity: str) -> str:
    return {"error": "bad", "warning": "warn"}.get(severity, "good")


def recommendations_section(page: Page, data: dict[str, Any]) -> None:
    """The changes the doctor recommends, and whether --apply can try each."""
    recs = data.get("recommendations") or []
    if not recs:
        return
    rows = [
        (
            r["name"],
            ", ".join(f"{k}={v}" for k, v in (r.get("overrides") or {}).items()) or "—",
            r.get("code", ""),
            r.get("reason", ""),
            badge("yes") if r.get("applicable") else esc(r.get("note") or "advice only"),
        )
        for r in recs
    ]
    page.add(
        "Recommendations", table(("change", "overrides", "for", "why", "--apply"), rows, raw=(4,))
    )


def applied_section(page: Page, data: dict[str, Any]) -> None:
    """The ablation of the recommendations over seeds (doctor --apply)."""
    applied = data.get("applied")
    if not applied:
        page.add(
            "Applied",
            para(
                "Not applied: `trainlab doctor RECIPE --apply` ablates the "
                "recommendations over seeds.",
                muted=True,
            ),
        )
        return
    rows = applied.get("rows") or []
    if not rows:
        page.add("Applied", para(applied.get("note") or "nothing was applied", muted=True))
        return
    metric, seeds = applied.get("metric", ""), applied.get("seeds") or []
    base = (applied.get("baseline") or {}).get("summary") or {}
    title = f"recommendations over {len(seeds)} seeds"
    page.add(
        "Applied",
        para(
            f"Each recommendation against the recipe as it is, over seeds "
            f"{', '.join(map(str, seeds))}; baseline {metric} {number(base.get('mean'))} ± "
            f"{number(base.get('std'))}."
        ),
        ablation_page.forest_figure(page, rows, metric, title),
        ablation_page.effects_table(rows),
    )
    results = Path(applied.get("study_dir") or "") / "results.json"
    if applied.get("study_dir") and results.is_file():
        ablation_page.per_seed_section(page, ablation_page.read_results(results.parent))


def probe_sections(page: Page, data: dict[str, Any], folder: Path) -> None:
    """The probe run's curves and monitors, and the LR range test."""
    probe_dir = Path((data.get("probe") or {}).get("run_dir") or folder / "probe")
    if not (probe_dir / "run.json").is_file():
        probe_dir = folder / "probe"
    if (probe_dir / "run.json").is_file():
        probe = run_page.read_run(probe_dir)
        run_page.curves_section(page, probe)
        run_page.gradient_section(page, probe)
        run_page.activation_section(page, probe)
    lr_path = folder / "lr_find" / "lr_find.json"
    lr = json.loads(lr_path.read_text(encoding="utf-8")) if lr_path.is_file() else None
    run_page.lr_section(page, lr)


def build_doctor_page(folder: str | Path) -> Page:
    """The whole report of a doctor folder."""
    folder = Path(folder)
    data = read_report(folder)
    probe, fit = data.get("probe") or {}, data.get("fit") or {}
    metrics = probe.get("metrics") or {}
    test = next((k for k in ("test_accuracy", "test_r2", "test_rmse") if k in metrics), None)
    page = Page(
        f"Doctor: {data.get('recipe', folder.name)}",
        f"{len(data.get('findings') or [])} findings · "
        f"{len(data.get('recommendations') or [])} recommendations",
        kind="doctor",
    )
    codes = " ".join(badge(c) for c in data.get("codes") or []) or badge("no alarm")
    page.add(
        "Summary",
        cards(
            [
                ("findings", len(data.get("findings") or [])),
                ("recommendations", len(data.get("recommendations") or [])),
                ("probe", f"{probe.get('status', '?')}, {probe.get('epochs', '?')} epochs"),
                *([(f"probe {test}", number(metrics[test]))] if test else []),
                ("seconds", number(data.get("seconds"), 1)),
            ]
        ),
        f"<p>{codes}</p>",
        f"<p>fit: {badge(fit['verdict'])} {esc(fit.get('reason', ''))}</p>" if fit else "",
        kv([("probe run", probe.get("run_dir", "")), ("folder", str(folder))]),
    )
    findings_section(page, data)
    recommendations_section(page, data)
    applied_section(page, data)
    if fit:
        keys = (
            "metric",
            "train_error",
            "val_error",
            "reference_error",
            "bias",
            "variance",
            "val_loss_rise",
            "train_trend",
            "val_trend",
            "epochs",
        )
        page.add(
            "Fit diagnosis",
            f"<p>{badge(fit['verdict'])} {esc(fit.get('reason', ''))}</p>",
            kv((k, number(fit.get(k))) for k in keys if k in fit),
        )
    probe_sections(page, data, folder)
    return page
