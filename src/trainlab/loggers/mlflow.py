"""`train.loggers: [mlflow]` — an MLflow run per trainlab run, read back by MlflowClient.

Where: `MLFLOW_TRACKING_URI` when set (MLflow's own convention: a server, a database, a
shared `sqlite:///…` file), else a SQLite store inside the run, `<run_dir>/mlflow/
mlflow.db`, with its artifacts beside it (MLflow 3 refuses new plain-file stores). The
experiment is `MLFLOW_EXPERIMENT_NAME`, else the recipe's name; the MLflow run is named
after the run directory. `<run_dir>/mlflow/run.json` records the store and run id, so a
resumed trainlab run continues the same MLflow run, in the store it started in.

Logged: the recipe as params (dotted keys), the same scalars as TensorBoard (`train/
loss`, `train/lr`, `epoch/<key>`, `final/<key>`, against the optimizer step), tags
(`trainlab.run_dir`, `trainlab.recipe_hash`, `trainlab.stop_reason`) and the model
artifact `model/` = model.safetensors + recipe.yaml. Scalars are buffered and sent at
most every 10 s by a thread of the logger's own while training goes on, the rest with the
final metrics; the fit ends once the store has everything. A resumed run re-sends the
epochs of its restored history that the store lacks (those a kill left unsent) and
skips those it already has, so no epoch is lost or repeated; only the sampled steps a
kill left unsent are lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from trainlab.config.loading import recipe_hash
from trainlab.engine.state import State
from trainlab.errors import RunError
from trainlab.fileio import write_json
from trainlab.loggers.base import Ending, LogContext, Logger, Point, numeric

FOLDER = "mlflow"
RUN_FILE = "run.json"
#: The logger of each MLflow run this process has open (see `_reopen`).
_OPEN: weakref.WeakValueDictionary[str, MlflowLogger] = weakref.WeakValueDictionary()
#: MLflow's limits per `log_batch` call (mlflow.utils.validation).
MAX_METRICS, MAX_PARAMS, MAX_PARAM_LENGTH = 1000, 100, 6000
#: Seconds between two sends during training (the rest goes with the final metrics).
SEND_SECONDS = 10.0


class MlflowLogger(Logger):
    """Params, scalars, tags and the model of a run, in an MLflow tracking store."""

    name = "mlflow"
    requires = (("mlflow.tracking", "mlflow-skinny"),)

    @classmethod
    def before_import(cls) -> None:
        """MLflow's usage telemetry off (it fetches a config from the network and sends
        records from a thread) unless the user chose: nothing leaves the machine."""
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    def __init__(self, context: LogContext) -> None:
        """Open the store, then create the MLflow run or reopen the one this run started."""
        super().__init__(context)
        self.folder = context.run_dir / FOLDER
        saved = _read_saved(self.folder / RUN_FILE)
        self.tracking_uri = saved.get("tracking_uri") or tracking_uri(self.folder)
        self.own_store = self.tracking_uri == tracking_uri(self.folder, environ={})
        self.client = open_client(self.tracking_uri, shared=not self.own_store)
        #: A call to MLflow's SQL store costs ~8 ms of CPU (and a disk wait): scalars are
        #: buffered, sent at most every SEND_SECONDS by a thread of their own while
        #: training goes on, and with the final metrics in one call at the end.
        self.sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainlab-mlflow")
        self.pending: list[Future] = []
        self.buffer: list[Any] = []
        self.sent_at = time.monotonic()
        try:
            self.run_id = self._reopen(saved.get("run_id"))
            self.resumed = self.run_id is not None
            if self.run_id is None:
                self.run_id = self._create()
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types
            raise RunError(
                f"train.loggers: cannot create the MLflow run in '{self.tracking_uri}': "
                f"{_first_line(exc)}; check MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME"
            ) from None
        _OPEN[self.run_id] = self
        write_json(
            self.folder / RUN_FILE,
            {"tracking_uri": self.tracking_uri, "run_id": self.run_id,
             "experiment_id": self.experiment_id},
        )  # fmt: skip

    def _reopen(self, run_id: str | None) -> str | None:
        if run_id is None:
            return None
        earlier = _OPEN.get(run_id)
        if earlier is not None:  # a fit of this run that failed in this process: its
            earlier.close()  # last batches land before this one reads what the store has
        with _quiet():
            try:
                run = self.client.get_run(run_id)
            except Exception:  # noqa: BLE001 - the run was deleted from the store
                return None
            self.experiment_id = run.info.experiment_id
            self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _create(self) -> str:
        from mlflow.entities import Param

        c = self.context
        with _quiet():
            self.experiment_id = self._experiment()
            tags = {
                "trainlab.run_dir": str(c.run_dir.resolve()),
                "trainlab.recipe_hash": recipe_hash(c.recipe),
            }
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=c.run_dir.name)
            params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in c.hparams.items()]
            for i in range(0, len(params), MAX_PARAMS):
                self.client.log_batch(run.info.run_id, params=params[i : i + MAX_PARAMS])
        return run.info.run_id

    def _experiment(self) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or self.context.recipe.name or "trainlab"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = artifact_location(self.tracking_uri, self.folder, self.own_store)
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # noqa: BLE001 - another process created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def start(self, state: State) -> tuple[int, int]:
        """What the store already has: the last `epoch/epoch` recorded (none for a new run)."""
        if not self.resumed:
            return 0, 0
        with _quiet():
            history = self.client.get_metric_history(self.run_id, "epoch/epoch")
        if not history:
            return 0, 0
        last = max(history, key=lambda m: m.step)
        return int(last.value), int(last.step)

    def write(self, rows: list[dict[str, Any]], points: list[Point]) -> None:
        """Buffer the points and rows; hand them to the sender thread every few seconds."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for p in points:
            self.buffer += [Metric("train/loss", p.loss, now, p.step),
                            Metric("train/lr", p.lr, now, p.step)]  # fmt: skip
        for row in rows:
            step = int(row["step"])
            self.buffer += [Metric(f"epoch/{k}", v, now, step) for k, v in numeric(row).items()]
        if time.monotonic() - self.sent_at >= SEND_SECONDS:
            self._submit(self._send, self._take(), [])

    def finish(self, end: Ending) -> None:
        """Final metrics, the model artifact, the stop reason; the run marked finished
        (failed when training diverged). Returns once the store has all of it."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        final = [Metric(f"final/{k}", float(v), now, end.step) for k, v in end.metrics.items()]
        tags = [RunTag("trainlab.stop_reason", end.stop_reason)]
        folder = Path(tempfile.mkdtemp(prefix="trainlab-mlflow-"))
        end.save_weights(folder / "model.safetensors")  # here: the model is this thread's
        recipe = self.context.run_dir / "recipe.yaml"
        if recipe.is_file():
            shutil.copyfile(recipe, folder / "recipe.yaml")
        status = "FAILED" if end.diverged else "FINISHED"
        self._submit(self._finish, self._take() + final, tags, folder, status)
        self._wait()

    def close(self) -> None:
        """Send what is buffered and let the sender finish, then stop it."""
        with contextlib.suppress(Exception):
            if self.buffer:
                self._submit(self._send, self._take(), [])
            self._wait()
        self.sender.shutdown(wait=True)

    def _take(self) -> list[Any]:
        metrics, self.buffer = self.buffer, []
        self.sent_at = time.monotonic()
        return metrics

    def _send(self, metrics: list[Any], tags: list[Any]) -> None:
        for i in range(0, max(len(metrics), 1), MAX_METRICS):
            batch = metrics[i : i + MAX_METRICS]
            self.client.log_batch(self.run_id, batch, tags=tags if i == 0 else [])

    def _finish(self, final: list[Any], tags: list[Any], folder: Path, status: str) -> None:
        try:
            self._send(final, tags)
            self.client.log_artifacts(self.run_id, str(folder), artifact_path="model")
            self.client.set_terminated(self.run_id, status)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _submit(self, work: Callable[..., None], *args: Any) -> None:
        """Queue `work` after what is queued; an earlier batch's failure is raised here."""
        done = [f for f in self.pending if f.done()]
        self.pending = [f for f in self.pending if not f.done()]
        for future in done:
            future.result()
        self.pending.append(self.sender.submit(work, *args))

    def _wait(self) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()


def tracking_uri(folder: Path, environ: Mapping[str, str] = os.environ) -> str:
    """`MLFLOW_TRACKING_URI`, else the SQLite store in the run's `mlflow/` folder."""
    own = f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    return environ.get("MLFLOW_TRACKING_URI") or own


def open_client(uri: str, shared: bool = True) -> Any:
    """An MlflowClient on `uri` with its tables created; RunError with the fix if not.

    A new SQLite file is a copy of an empty store cached per MLflow version (MLflow's own
    schema migrations take seconds, every time); for a `shared` file, a lock beside it
    keeps two processes (a search's workers) from creating it at once.
    """
    MlflowLogger.before_import()
    from mlflow.tracking import MlflowClient

    try:
        with _quiet(), _sqlite_lock(uri if shared else ""):
            db = sqlite_path(uri)
            if db is not None and not db.exists():
                _copy_empty_store(db)
            if db is not None and not shared:
                _relax_durability(db)
            return MlflowClient(tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - MLflow and SQLAlchemy raise many types
        raise RunError(
            f"train.loggers: cannot open the MLflow tracking store '{uri}': {_first_line(exc)}"
            "; check MLFLOW_TRACKING_URI (unset it for a store inside the run directory)"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


#: Real paths of the SQLite files whose connections skip fsync (`_relax_durability`).
_RELAXED: set[str] = set()


def _relax_durability(db: Path) -> None:
    """No fsync on commit for a run's own store (`PRAGMA synchronous=OFF`).

    The store is a copy of what trainlab keeps anyway (history, metrics, weights), a
    resumed run re-sends what it lacks, and MLflow's plain-file store never synced
    either; waiting for the disk cost ~40 ms a commit on a busy machine, at every epoch
    and four times at the end. Shared stores (MLFLOW_TRACKING_URI) are left as they are.
    """
    import sqlalchemy

    if not _RELAXED:
        sqlalchemy.event.listen(sqlalchemy.pool.Pool, "connect", _on_connect)
    _RELAXED.add(os.path.realpath(db))


def _on_connect(dbapi_connection: Any, record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    row = dbapi_connection.execute("PRAGMA database_list").fetchone()
    if row is not None and row[2] and os.path.realpath(row[2]) in _RELAXED:
        dbapi_connection.execute("PRAGMA synchronous=OFF")
        dbapi_connection.execute("PRAGMA journal_mode=TRUNCATE")


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///PATH` URI (None for anything else)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def artifact_location(uri: str, folder: Path, own: bool) -> str | None:
    """Where a new experiment keeps its artifacts: inside the run for the run's own store,
    beside the file for another SQLite store (not MLflow's `./mlruns` of whatever folder
    the process ran in), the server's choice otherwise."""
    if own:
        return (folder / "artifacts").resolve().as_uri()
    db = sqlite_path(uri)
    return (db.resolve().parent / "mlartifacts").as_uri() if db is not None else None


def _copy_empty_store(db: Path) -> None:
    """Create `db` as a copy of the cached empty store; on any failure leave it to MLflow."""
    import mlflow
    from mlflow.tracking import MlflowClient

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trainlab"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    fresh = cache / f".mlflow-{os.getpid()}-{time.time_ns()}.db"
    partial = db.with_name(f".{db.name}.{os.getpid()}")
    try:
        if not template.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            MlflowClient(tracking_uri=f"sqlite:///{fresh.resolve()}")
            os.replace(fresh, template)  # atomic: racing creators each leave a whole file
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, partial)
        os.replace(partial, db)
    except Exception:  # noqa: BLE001 - a read-only cache only costs the migrations' time
        fresh.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def _sqlite_lock(uri: str) -> Iterator[None]:
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's INFO lines ("Creating initial MLflow database tables…") and its
    dependencies' deprecation warnings are not the user's business."""
    log = logging.getLogger("mlflow")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        log.setLevel(level)


def _read_saved(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
