"""A finished (or paused) study's outputs: best recipe, Pareto table, plots, final test.

Everything here only reads the study; it can run again at any time (e.g. while other
machines still work on a shared PostgreSQL study) and overwrites its files.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from trainlab.config.loading import apply_overrides, dump_recipe
from trainlab.config.schema import validate_recipe
from trainlab.errors import TrainlabError
from trainlab.fileio import atomic_write_text

if TYPE_CHECKING:
    from trainlab.studies.tune import TuneConfig


def _decoded(cfg: TuneConfig, t: FrozenTrial) -> dict[str, Any]:
    return cfg.space.overrides(t.params)


def pareto_rows(cfg: TuneConfig, study: optuna.Study) -> list[dict[str, Any]]:
    """The Pareto-optimal complete trials, best first on the first objective."""
    front = [t for t in study.best_trials if t.state == TrialState.COMPLETE]
    sign = -1 if cfg.objectives[0].direction == "maximize" else 1
    front.sort(key=lambda t: (sign * t.values[0], t.number))
    return [
        {
            "trial": t.number,
            **{o.metric: v for o, v in zip(cfg.objectives, t.values, strict=True)},
            **_decoded(cfg, t),
        }
        for t in front
    ]


def write_pareto_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """The Pareto front as CSV: trial, one column per objective, one per parameter."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())
    return path


def _cell(value: Any) -> Any:
    return str(value) if isinstance(value, (list, dict)) else value


def write_plots(cfg: TuneConfig, study: optuna.Study, folder: Path) -> dict[str, str]:
    """PNG plots through optuna.visualization.matplotlib; a plot that cannot be drawn
    (too few complete trials, one parameter only) is skipped and named in the result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    primary = cfg.objectives[0].metric
    target = (lambda t: t.values[0]) if cfg.multi else None
    kw: dict[str, Any] = (
        {"target": target, "target_name": primary} if cfg.multi else {"target_name": primary}
    )
    plots: dict[str, Any] = {
        "history": lambda: ovm.plot_optimization_history(study, **kw),
        "importances": lambda: ovm.plot_param_importances(study, **kw),
        "parallel_coordinates": lambda: ovm.plot_parallel_coordinate(study, **kw),
    }
    if cfg.options.pruner != "none" and not cfg.multi:
        plots["intermediate_values"] = lambda: ovm.plot_intermediate_values(study)
    if cfg.multi and len(cfg.objectives) in (2, 3):
        plots["pareto_front"] = lambda: ovm.plot_pareto_front(
            study, target_names=[o.metric for o in cfg.objectives]
        )
    written: dict[str, str] = {}
    for name, draw in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = draw()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            path = folder / f"{name}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            written[name] = str(path)
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as exc:
            written[name] = (
                f"skipped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            )
            plt.close("all")
    return written


def counts_by_state(trials: list[FrozenTrial]) -> dict[str, int]:
    """{'complete': 12, 'pruned': 7, 'fail': 1, …} (every state present, zeros included)."""
    counts = Counter(t.state.name.lower() for t in trials)
    return {s.name.lower(): counts.get(s.name.lower(), 0) for s in TrialState}


def dump_best_recipe(cfg: TuneConfig, overrides: dict[str, Any], path: Path, note: str) -> Path:
    """Write the recipe with `overrides` applied, ready for `trainlab train`."""
    data = apply_overrides(cfg.recipe, overrides)
    data["name"] = f"{cfg.recipe.get('name', 'run')}-best"
    recipe = validate_recipe(data, str(path))
    header = "".join(f"# {line}\n" for line in note.splitlines())
    atomic_write_text(path, header + dump_recipe(recipe))
    return path


def write_results(
    study: optuna.Study, cfg: TuneConfig, *, final: bool = True, plots: bool = True
) -> dict[str, Any]:
    """Write best_recipe.yaml (+ pareto.csv, plots/), train and test the best recipe."""
    trials = study.get_trials(deepcopy=False)
    data = _header(cfg, trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        data["message"] = "no trial completed yet; nothing to recommend"
        return data
    best, note = _best(cfg, study, complete, data)
    params = _decoded(cfg, best)
    data["best_trial"] = best.number
    data["best_params"] = params
    path = dump_best_recipe(
        cfg, params, cfg.out / "best_recipe.yaml", note + "\nTrain it: trainlab train THIS_FILE"
    )
    data["best_recipe"] = str(path)
    if plots:
        data["plots"] = write_plots(cfg, study, cfg.out / "plots")
    if final:
        data["best_run"] = _train_best(cfg, path, best.number)
    return data


def _header(cfg: TuneConfig, trials: list[FrozenTrial]) -> dict[str, Any]:
    """The study's settings and counts; the best-* keys are filled in once one is known."""
    return {
        "study": cfg.study_name,
        "storage": cfg.storage.describe(),
        "out": str(cfg.out),
        "sampler": cfg.options.sampler,
        "pruner": cfg.options.pruner,
        "objectives": [o.spec() for o in cfg.objectives],
        "trials": counts_by_state(trials),
        "n_trials": len(trials),
        "epochs_total": int(sum(int(t.user_attrs.get("epochs", 0)) for t in trials)),
        "best_trial": None,
        "best_value": None,
        "best_values": None,
        "best_params": None,
        "best_recipe": None,
        "best_run": None,
    }


def _best(
    cfg: TuneConfig, study: optuna.Study, complete: list[FrozenTrial], data: dict[str, Any]
) -> tuple[FrozenTrial, str]:
    """The trial to recommend and a note saying why; its values (and the front) go to `data`."""
    if cfg.multi:
        rows = pareto_rows(cfg, study)
        data["pareto"] = rows
        data["pareto_csv"] = str(write_pareto_csv(rows, cfg.out / "pareto.csv"))
        best = next(t for t in complete if t.number == rows[0]["trial"])
        data["best_values"] = list(best.values)
        data["best_value"] = best.values[0]
        return best, (
            f"Pareto-optimal trial {best.number} of study {cfg.study_name} (best "
            f"{cfg.objectives[0].metric} on the front); the whole front is in pareto.csv"
        )
    best = study.best_trial
    data["best_value"] = best.value
    return best, (
        f"Best trial {best.number} of study {cfg.study_name}: "
        f"{cfg.objectives[0].metric} = {best.value:.6g} (validation)"
    )


def _train_best(cfg: TuneConfig, path: Path, number: int) -> dict[str, Any]:
    """Train the best recipe once more, this time tested; an error is reported, not raised."""
    from trainlab.runs import train

    try:
        run = train(
            path, out=cfg.out / f"best-trial-{number:04d}", quiet=True, study=cfg.study_name
        )
    except TrainlabError as exc:
        return {"error": str(exc)}
    return {"run_dir": str(run.run_dir), "status": run.status, "metrics": run.metrics}
