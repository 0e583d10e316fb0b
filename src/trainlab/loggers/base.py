"""What every logger is given and what it must do: the contract of `train.loggers`.

A `Logger` is one destination (TensorBoard event files, an MLflow run, a CSV file). It is
driven by the `Logging` subscriber, never by the engine directly, through four calls:
`start` when the fit starts or resumes, `write` with new history rows and sampled steps,
`finish` with the final metrics, and `close`. Loggers only read; the weights a run trains
are the same with and without them (tests/loggers).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from trainlab.config.schema import Recipe
from trainlab.engine.checkpoint import CheckpointStore, save_weights
from trainlab.engine.state import State
from trainlab.errors import RecipeError

#: The extra that installs every optional logger's package.
INSTALL_HINT = "pip install 'trainlab[loggers]'"

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Point:
    """One sampled optimizer step: its number, the batch's training loss and the lr used."""

    step: int
    loss: float
    lr: float


@dataclass(frozen=True)
class LogContext:
    """What a logger knows when it is built (before training): where and what."""

    run_dir: Path
    recipe: Recipe
    hparams: dict[str, Scalar]  # the recipe flattened to dotted keys (`flatten_recipe`)


@dataclass(frozen=True)
class Ending:
    """How a fit ended, for a logger's last write.

    `metrics` are metrics.json's (validation of the epoch the run keeps, then test);
    `model` holds the weights the run saves, or is None when the fit diverged (then
    `kept_weights` is the last good checkpoint's file, or None when no epoch finished).
    """

    step: int
    epoch: int
    metrics: dict[str, float]
    stop_reason: str
    diverged: bool
    model: nn.Module | None
    kept_weights: Path | None

    def save_weights(self, path: Path) -> bool:
        """Write the weights the run keeps to `path` (safetensors); False if there are none."""
        if self.model is not None:
            save_weights(self.model, path)
            return True
        if self.kept_weights is not None and self.kept_weights.is_file():
            path.write_bytes(self.kept_weights.read_bytes())
            return True
        return False


class Logger:
    """One destination of a run's scalars; subclasses override the calls they need.

    Built before training (so a missing package or an unreachable store is reported
    before any epoch runs). `start` returns the (epoch, step) already recorded at the
    destination: rows and steps up to there are not written again after a resume.
    """

    name: ClassVar[str] = ""
    #: (module, package) pairs this logger imports; a missing one is a RecipeError that
    #: names the package and the extra installing it.
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, context: LogContext) -> None:
        self.context = context

    @classmethod
    def before_import(cls) -> None:
        """Set up the process before the logger's packages are first imported."""

    def start(self, state: State) -> tuple[int, int]:
        """The fit starts (or resumes at `state.epoch`); what is already recorded."""
        return state.epoch, state.step

    def write(self, rows: list[dict[str, Any]], points: list[Point]) -> None:
        """New history rows (one per epoch) and sampled steps, in order."""

    def finish(self, end: Ending) -> None:
        """The fit ended: final metrics and, where the destination keeps them, the weights."""

    def close(self) -> None:
        """Release files and connections; called once, after `finish` or a failure."""


def missing_packages(logger: type[Logger]) -> list[str]:
    """The packages of `logger.requires` whose modules cannot be imported here."""
    logger.before_import()
    missing = []
    for module, package in logger.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    return list(dict.fromkeys(missing))


def check_installed(loggers: list[type[Logger]]) -> None:
    """RecipeError naming every logger whose package is missing and the extra to install.

    Importing is the check (a package present but broken counts as missing), and it
    is paid here, before training, rather than in the first epoch."""
    problems = [
        f"{logger.name} needs {' and '.join(missing)}"
        for logger in loggers
        if (missing := missing_packages(logger))
    ]
    if problems:
        raise RecipeError(
            f"train.loggers: {'; '.join(problems)}, not installed here; run "
            f"{INSTALL_HINT} (or remove the logger from train.loggers)"
        )


def ending(state: State, diverged: bool) -> Ending:
    """The `Ending` of a fit whose FIT_END is being handled."""
    kept = None
    if diverged and state.run_dir is not None:
        from trainlab.store.rundir import RunDir

        latest = CheckpointStore(RunDir(state.run_dir).checkpoints).latest()
        kept = latest / "model.safetensors" if latest is not None else None
    reason = state.stop_reason.value if state.stop_reason is not None else "completed"
    return Ending(
        step=state.step,
        epoch=state.epoch,
        metrics=state.final_metrics(),
        stop_reason=reason,
        diverged=diverged,
        model=None if diverged else state.model,
        kept_weights=kept,
    )


def numeric(row: dict[str, Any]) -> dict[str, float]:
    """The entries of a history row that are numbers (bools as 0/1), `step` left out: the
    x-axis of every scalar is the optimizer step."""
    return {
        k: float(v)
        for k, v in row.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, str)
    }


def flatten_recipe(recipe: Recipe) -> dict[str, Scalar]:
    """The resolved recipe as hyper-parameters: dotted keys → strings, numbers, booleans.

    Techniques are keyed by name (`techniques.mixup.alpha`), so the same technique lines
    up across runs, and `techniques` lists them in recipe order; other lists of scalars
    are JSON text (`model.hidden` → "[128]"); None is "null".
    """
    data = recipe.to_dict()
    techniques = data.pop("techniques", None) or []
    flat: dict[str, Scalar] = {}
    _flatten(data, "", flat)
    names: list[str] = []
    for spec in techniques:
        base = str(spec.get("name"))
        key, n = base, 2
        while key in names:  # the same technique twice (stages of one kind, say)
            key, n = f"{base}#{n}", n + 1
        names.append(key)
        _flatten({k: v for k, v in spec.items() if k != "name"}, f"techniques.{key}.", flat)
    flat["techniques"] = ",".join(names) or "none"
    return flat


def _flatten(value: Any, prefix: str, out: dict[str, Scalar]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}{key}.", out)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}{i}.", out)
    elif prefix:
        key = prefix[:-1]
        if value is None:
            out[key] = "null"
        elif isinstance(value, str | int | float | bool):
            out[key] = value
        else:
            out[key] = json.dumps(value, default=str)
