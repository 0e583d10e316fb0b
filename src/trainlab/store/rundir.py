"""The run directory: the files of one run and the rules for naming it.

run_dir/
  recipe.yaml        the resolved recipe (every default filled in)
  run.json           status, stop reason, seed, recipe hash, timings, environment
  metrics.json       final metrics (val/test)
  history.jsonl      one line of metrics per epoch
  preprocess.json    fitted preprocessing (plain numbers; no code)
  data.json          facts about the data the model was trained on (shape, classes)
  model.safetensors  the weights to use for prediction
  checkpoints/       resumable state (see engine.checkpoint)
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

from trainlab.errors import RunError
from trainlab.fileio import atomic_write_text, to_json, write_json
from trainlab.names import check_safe_name


class RunStatus(str, Enum):
    """Where a run stands, as run.json and the run index record it."""

    CREATED = "created"
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # stopped by the user (Ctrl-C); resumes
    FAILED = "failed"  # an error ended it; resumes once the cause is fixed
    COMPLETED = "completed"
    STOPPED = "stopped"  # a technique ended it early (early stopping, a time limit)
    DIVERGED = "diverged"  # a non-finite loss; the last good epoch is kept

    def __str__(self) -> str:
        return self.value


#: Statuses of a run that `trainlab train` on its directory resumes (or retries).
UNFINISHED = (RunStatus.CREATED, RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.FAILED)
#: Statuses of a run that ended and is read back as it is.
FINISHED = (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.DIVERGED)


class RunDir:
    """Paths and JSON files of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    recipe = property(lambda self: self.path / "recipe.yaml")
    weights = property(lambda self: self.path / "model.safetensors")
    checkpoints = property(lambda self: self.path / "checkpoints")

    def read_json(self, name: str, default: Any = None) -> Any:
        """Parse `name` in the run dir; `default` if absent; RunError if corrupt."""
        path = self.path / name
        if not path.is_file():
            if default is not None:
                return default
            raise RunError(f"'{path}' not found; is '{self.path}' a trainlab run directory?")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
            raise RunError(
                f"'{path}' is corrupt ({why}); the run cannot be read: restore the file from "
                "a backup, or train the recipe again into a new --out"
            ) from None

    def write_json(self, name: str, data: Any) -> None:
        """Write `data` as JSON atomically."""
        write_json(self.path / name, data)

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        """Replace history.jsonl with `rows`, atomically."""
        text = "".join(to_json(r, indent=None) + "\n" for r in rows)
        atomic_write_text(self.path / "history.jsonl", text)

    def history(self) -> list[dict[str, Any]]:
        """Per-epoch metrics recorded so far."""
        path = self.path / "history.jsonl"
        if not path.is_file():
            return []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            lines = ["\x00"]
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise RunError(
                    f"'{path}' is corrupt at line {number} (cut short or edited); the weights "
                    "and metrics are unaffected: delete the file to read the run without its "
                    "per-epoch history"
                ) from None
        return rows

    def info(self) -> dict[str, Any]:
        """The run record (run.json), or {} for a directory that holds no run yet."""
        return self.read_json("run.json", default={}) if (self.path / "run.json").is_file() else {}

    def exists(self) -> bool:
        """True when this directory holds a run record."""
        return (self.path / "run.json").is_file()


def run_dir_for(root: Path, name: str) -> Path:
    """`root/name`, refusing names that would escape `root`."""
    try:
        check_safe_name(name)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    path = (Path(root) / name).resolve()
    if Path(root).resolve() not in path.parents:
        raise RunError(f"run name {name!r} would leave the runs folder '{root}'")
    return path


def next_free_run_dir(root: Path, name: str) -> Path:
    """`root/name` if it is free or holds an unfinished run to resume, else name-2, name-3…"""
    base = run_dir_for(root, name)
    candidate, n = base, 1
    while RunDir(candidate).exists() and RunDir(candidate).info().get("status") not in UNFINISHED:
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate
