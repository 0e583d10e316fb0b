"""The report of a hyper-parameter search (`trainlab tune`): Optuna's own plots of the
study, the trials by state, the Pareto front and the best recipe.

The study folder's summary.json names the Optuna storage (a journal file, or a database
URL whose password is masked: pass `storage` to open it); the plots are drawn from the
trials read back through Optuna's API. When the storage cannot be opened, the PNGs that
`trainlab tune` saved in plots/ are shown instead, with a note saying why.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from trainlab.report.page import (
    Page,
    badge,
    cards,
    esc,
    grid,
    kv,
    number,
    para,
    pre,
    read_folder_json,
    table,
)


def read_summary(folder: Path) -> dict[str, Any]:
    """summary.json of a tune study; RunError when unreadable."""
    return read_folder_json(
        folder,
        "summary.json",
        "re-run the same `trainlab tune` command (with --trials no "
        "higher than before) to rewrite it",
    )


def load_study(summary: dict[str, Any], folder: Path, storage: str | None) -> tuple[Any, str]:
    """The Optuna study read back from its storage, or (None, why not)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    location = storage or summary.get("storage") or str(folder / "study.journal")
    if "://" in location:
        if "***" in location:
            return None, (
                "the study lives in a database whose password summary.json does not keep; "
                "pass --storage URL to draw its plots from the trials"
            )
        backend: Any = lambda: RDBStorage(location)  # noqa: E731
    else:
        path = Path(location.removeprefix("journal:"))
        if not path.is_file():
            return None, f"the study's journal '{path}' is gone"
        backend = lambda: JournalStorage(JournalFileBackend(str(path)))  # noqa: E731
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.load_study(study_name=summary["study"], storage=backend())
    except Exception as exc:  # optuna and SQLAlchemy raise many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"the study's storage could not be read: {first}"
    return study, ""


def _objective_names(summary: dict[str, Any]) -> list[str]:
    return [o.split(":", 1)[-1] for o in summary.get("objectives") or []]


def optuna_figures(page: Page, study: Any, names: list[str]) -> tuple[list[str], list[str]]:
    """Optuna's matplotlib plots of the study, inlined; and the ones that could not be drawn."""
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    multi = len(study.directions) > 1
    kw: dict[str, Any] = {"target_name": names[0] if names else "objective"}
    if multi:
        kw["target"] = lambda t: t.values[0]
    plots: list[tuple[str, Any]] = [
        ("optimization history", lambda: ovm.plot_optimization_history(study, **kw)),
        ("parameter importances (fANOVA)", lambda: ovm.plot_param_importances(study, **kw)),
        ("parallel coordinates", lambda: ovm.plot_parallel_coordinate(study, **kw)),
    ]
    if multi and len(study.directions) in (2, 3):
        plots.append(("Pareto front", lambda: ovm.plot_pareto_front(study, target_names=names)))
    trials = study.get_trials(deepcopy=False)
    if not multi and any(t.intermediate_values for t in trials):
        plots.append(("intermediate values (pruning)", lambda: ovm.plot_intermediate_values(study)))
    if any(t.state != TrialState.RUNNING and t.datetime_start for t in trials):
        plots.append(("timeline: complete vs pruned trials", lambda: ovm.plot_timeline(study)))
    drawn, skipped = [], []
    for caption, draw in plots:
        figure = _draw(draw)
        if isinstance(figure, str):
            skipped.append(f"{caption}: {figure}")
        else:
            drawn.append(page.figure(figure, caption, caption))
    return drawn, skipped


def _draw(draw: Any) -> Any:
    """The figure `draw` makes, or the reason it could not (too few trials…)."""
    import matplotlib.pyplot as plt

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = draw()
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError, KeyError) as exc:
        plt.close("all")
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(6.4, 4.0)
    fig.tight_layout()
    return fig


def trials_table(study: Any, names: list[str]) -> str:
    """Every trial: state, objective values, parameters, epochs, seconds."""
    rows = []
    keys: list[str] = []
    for t in study.get_trials(deepcopy=False):
        keys += [k for k in t.params if k not in keys]
    for t in study.get_trials(deepcopy=False):
        values = t.values or [None] * max(1, len(names))
        rows.append(
            (
                t.number,
                badge(t.state.name.lower()),
                *(number(v) for v in values),
                *(_param(t.params.get(k)) for k in keys),
                t.user_attrs.get("epochs", "—"),
                number(t.user_attrs.get("seconds"), 2),
            )
        )
    header = ("trial", "state", *(names or ["value"]), *keys, "epochs", "seconds")
    n = len(names or ["value"])
    return table(
        header, rows, numeric=(0, *range(2, 2 + n), len(header) - 2, len(header) - 1), raw=(1,)
    )


def _param(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def best_section(page: Page, summary: dict[str, Any], folder: Path) -> None:
    """The best trial, its recipe, the final run of that recipe and the Pareto front."""
    names = _objective_names(summary)
    best = summary.get("best_values") or [summary.get("best_value")]
    facts = [
        ("best trial", summary.get("best_trial")),
        *((f"best {n}", number(v)) for n, v in zip(names, best, strict=False)),
        *((k, _param(v)) for k, v in (summary.get("best_params") or {}).items()),
    ]
    parts = [kv(facts)]
    run = summary.get("best_run") or {}
    if run.get("metrics"):
        parts += [
            f"<h3>Best recipe trained and tested ({esc(run.get('status', ''))})</h3>",
            kv((k, number(v)) for k, v in run["metrics"].items()),
            para(f"run directory: {run.get('run_dir', '')}", muted=True),
        ]
    pareto = summary.get("pareto") or []
    if pareto:
        columns = list(dict.fromkeys(k for row in pareto for k in row))
        rows = [[_param(row.get(c)) for c in columns] for row in pareto]
        parts += ["<h3>Pareto-optimal trials</h3>", table(columns, rows)]
    recipe_path = Path(summary.get("best_recipe") or folder / "best_recipe.yaml")
    if not recipe_path.is_file():
        recipe_path = folder / "best_recipe.yaml"
    if recipe_path.is_file():
        parts += ["<h3>Best recipe</h3>", pre(recipe_path.read_text(encoding="utf-8"), tall=True)]
    page.add("Best", *parts)


def saved_plots(page: Page, folder: Path) -> list[str]:
    """The PNG plots `trainlab tune` wrote (plots/*.png), when the study cannot be read."""
    return [
        page.image(p.read_bytes(), p.stem.replace("_", " "))
        for p in sorted(folder.glob("plots/*.png"))
    ]


def build_tune_page(folder: str | Path, storage: str | None = None) -> Page:
    """The whole report of a tune study folder."""
    folder = Path(folder)
    summary = read_summary(folder)
    names = _objective_names(summary)
    counts = summary.get("trials") or {}
    page = Page(
        f"Search {summary.get('study', folder.name)}",
        f"{summary.get('sampler')} sampler · {summary.get('pruner')} pruner · "
        f"{', '.join(summary.get('objectives') or [])}",
        kind="tune",
    )
    page.add(
        "Summary",
        cards(
            [
                ("trials", summary.get("n_trials")),
                *((s, n) for s, n in counts.items() if n),
                ("epochs trained", summary.get("epochs_total")),
                ("seconds", number(summary.get("seconds"), 1)),
            ]
        ),
        kv(
            [
                ("objectives", ", ".join(summary.get("objectives") or [])),
                ("sampler", summary.get("sampler")),
                ("pruner", summary.get("pruner")),
                ("storage", summary.get("storage")),
                ("finished", summary.get("finished_at", "")),
            ]
        ),
    )
    study, why = load_study(summary, folder, storage)
    if study is not None:
        drawn, skipped = optuna_figures(page, study, names)
        page.add(
            "Search plots",
            grid(*drawn),
            para("Not drawn: " + "; ".join(skipped), muted=True) if skipped else "",
        )
    else:
        page.add("Search plots", para(why), grid(*saved_plots(page, folder)))
    best_section(page, summary, folder)
    if study is not None:
        page.add("Trials", trials_table(study, names))
    return page
