"""k-fold cross-validation of a recipe: k runs, one per fold, reported as mean ± std.

`data.cv: 5` in a recipe makes `trainlab.train` train its folds here. Fold i trains on
the other folds of the non-test data and validates on fold i (stratified for
classification); each fold is an ordinary, resumable run under `<run dir>/fold-<i>`.
The summary (per-fold metrics, mean and sample standard deviation) is written to
`<run dir>/cv.json` and is a row of the run index of its own (`trainlab runs` lists it
beside its folds). This module trains nothing itself: `runs.train` hands it the function
that trains one fold, so the two do not import each other.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from trainlab.config.schema import Recipe
from trainlab.fileio import write_json
from trainlab.store.rundir import RunStatus


def summarize(fold_metrics: list[dict[str, float]]) -> dict[str, float]:
    """Mean and sample std (0 for one fold) of every metric all folds report."""
    keys = [k for k in fold_metrics[0] if all(k in m for m in fold_metrics)]
    out: dict[str, float] = {}
    for key in keys:
        values = [float(m[key]) for m in fold_metrics]
        out[key] = statistics.fmean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


class FoldRun(Protocol):
    """What cross-validation reads of each fold's run."""

    run_dir: Path
    metrics: dict[str, float]

    @property
    def status(self) -> str: ...


def train_folds(
    recipe: Recipe,
    out: str | Path,
    train_fold: Callable[[dict[str, Any], Path], FoldRun],
    store: str | None = None,
    study: str | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Train every fold of `recipe` (which has `data.cv` set) with `train_fold`.

    Returns the cross-validation record (status, k, each fold's run and metrics) and the
    summary metrics: each fold metric's mean under its own name and its standard
    deviation under `<name>_std`. Both are written to `<out>/cv.json` and indexed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    k = int(recipe.data.cv or 0)
    data = recipe.to_dict()
    runs = []
    for fold in range(k):
        fold_recipe = json.loads(json.dumps(data))
        fold_recipe["data"]["fold"] = fold
        fold_recipe["name"] = f"{recipe.name}-fold{fold}"
        runs.append(train_fold(fold_recipe, out / f"fold-{fold}"))
    metrics = summarize([r.metrics for r in runs])
    statuses = {str(r.status) for r in runs}
    info: dict[str, Any] = {
        "name": out.name,
        "status": RunStatus.COMPLETED if statuses == {"completed"} else ",".join(sorted(statuses)),
        "cv": k,
        "folds": [
            {"fold": i, "run_dir": str(r.run_dir), "status": r.status, "metrics": r.metrics}
            for i, r in enumerate(runs)
        ],
    }
    write_json(out / "cv.json", {**info, "metrics": metrics})
    _index_parent(recipe, out, info["status"], metrics, store, study)
    return info, metrics


def _index_parent(
    recipe: Recipe, out: Path, status: str, metrics: dict, store: str | None, study: str | None
) -> None:
    """One row for the whole cross-validation (mean ± std), beside the folds' own rows."""
    from trainlab.config.loading import recipe_hash
    from trainlab.store.index import RunIndex

    RunIndex(store).record(
        {
            "run_dir": str(out.resolve()),
            "name": out.name,
            "recipe_hash": recipe_hash(recipe),
            "status": status,
            "stop_reason": None,
            "dataset": recipe.data.dataset.name,
            "model": recipe.model.name,
            "seed": recipe.train.seed,
            "study": study,
            "metrics": metrics,
        }
    )
