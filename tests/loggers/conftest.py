"""Shared by the logger tests: readers of what each destination holds, and one MLflow
store per session (a new SQLite store costs MLflow seconds of schema migrations)."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory):
    """The cached empty MLflow store (loggers/mlflow.py) goes to a session folder, not
    the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory, cache_home) -> str:
    """A SQLite tracking store created once for the session."""
    from trainlab.loggers.mlflow import open_client

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    open_client(uri)
    return uri


@pytest.fixture
def shared_store(mlflow_uri, monkeypatch) -> str:
    """MLFLOW_TRACKING_URI pointing at the session's store, a fresh experiment per test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", f"test-{uuid.uuid4().hex[:8]}")
    return mlflow_uri


def tensorboard_events(run_dir: Path):
    """TensorBoard's own reader on the run's event files, everything kept (no sampling)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag → [(step, value)] as TensorBoard loads them (purged steps already hidden)."""
    acc = tensorboard_events(run_dir)
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def mlflow_run(run_dir: Path):
    """(client, run) of the MLflow run a trainlab run recorded in mlflow/run.json."""
    from mlflow.tracking import MlflowClient

    saved = json.loads((run_dir / "mlflow" / "run.json").read_text())
    client = MlflowClient(tracking_uri=saved["tracking_uri"])
    return client, client.get_run(saved["run_id"])


def csv_rows(run_dir: Path) -> list[dict[str, float]]:
    """log.csv's rows, numbers parsed."""
    with (run_dir / "log.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_json(path: Path):
    """A JSON file's content."""
    return json.loads(path.read_text())
