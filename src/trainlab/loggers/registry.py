"""The logger registry: a name in `train.loggers` → its class, and the one builder the
run assembly calls.

    build_loggers(recipe, run_dir)  # [] or [Logging(...)], ready to subscribe to a fit

Building checks every logger's package first (one RecipeError naming the extra to
install), then opens each destination, all before the first epoch.
"""

from __future__ import annotations

from pathlib import Path

from trainlab.config.schema import Recipe
from trainlab.engine.technique import Technique
from trainlab.loggers.base import LogContext, Logger, check_installed, flatten_recipe
from trainlab.loggers.csv import CsvLogger
from trainlab.loggers.mlflow import MlflowLogger
from trainlab.loggers.subscriber import Logging
from trainlab.loggers.tensorboard import TensorBoardLogger
from trainlab.registry import Registry

LOGGERS: Registry[type[Logger]] = Registry("logger")
LOGGERS.add(
    "tensorboard",
    TensorBoardLogger,
    description="TensorBoard event files in <run_dir>/tensorboard/ (extra: loggers)",
)
LOGGERS.add(
    "mlflow",
    MlflowLogger,
    description="an MLflow run in MLFLOW_TRACKING_URI or <run_dir>/mlflow/ (extra: loggers)",
)
LOGGERS.add("csv", CsvLogger, description="<run_dir>/log.csv, one row per epoch")


def build_loggers(recipe: Recipe, run_dir: str | Path | None) -> list[Technique]:
    """The subscriber feeding the recipe's `train.loggers`, or [] when it names none or
    the fit has no run directory (a fine-tuning pass inside compress, say)."""
    names = list(dict.fromkeys(recipe.train.loggers or []))
    if not names or run_dir is None:
        return []
    classes = [LOGGERS.get(name, "train.loggers").builder for name in names]
    check_installed(classes)
    context = LogContext(Path(run_dir), recipe, flatten_recipe(recipe))
    built: list[Logger] = []
    try:
        for cls in classes:
            built.append(cls(context))
    except BaseException:
        Logging(built).close()
        raise
    return [Logging(built)]
