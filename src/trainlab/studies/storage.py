"""Where a study lives, and how a killed worker's trial is failed and retried.

Local parallel workers share an Optuna journal file (Optuna's FAQ advises against SQLite
for parallel writers); several machines share a database (`postgresql://…`) through
Optuna's RDB storage with its heartbeat. The journal has no heartbeat of its own, so
trainlab adds one: each running trial records its host and process id and touches a
heartbeat file; `sweep_stale_trials` fails a RUNNING trial whose process is gone (same
host) or whose heartbeat is older than the grace period, and re-queues its parameters.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages import RetryHeartbeatStaleTrialCallback as RetryStale
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock  # public base, private module
from optuna.trial import FrozenTrial, TrialState

from trainlab.errors import RunError

HOST_KEY = "trainlab:host"
PID_KEY = "trainlab:pid"
REASON_KEY = "trainlab:fail_reason"
DB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite", "mariadb", "oracle", "mssql")


@dataclass(frozen=True)
class StorageSpec:
    """A resolved `--store` (alias `--storage`): a journal file or a database URL, plus
    heartbeat settings."""

    kind: str  # journal | rdb
    location: str
    heartbeat: int = 10
    max_retry: int = 2

    @property
    def grace(self) -> int:
        """Seconds without a heartbeat after which a running trial counts as dead."""
        return max(2, 2 * self.heartbeat)

    def describe(self) -> str:
        """The location with any password masked, for messages and summaries."""
        return mask_password(self.location)

    @property
    def heartbeat_dir(self) -> Path:
        """Journal storage only: folder of per-trial heartbeat files."""
        return Path(self.location + ".heartbeats")


def mask_password(url: str) -> str:
    """'postgresql://u:secret@h/db' → 'postgresql://u:***@h/db'."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def resolve_storage(
    url: str | None, study_dir: Path, heartbeat: int = 10, max_retry: int = 2
) -> StorageSpec:
    """`None` → a journal file in the study folder; `journal:PATH` or `*.journal` → that file;
    a SQLAlchemy URL → the database."""
    if heartbeat < 1:
        raise RunError(f"--heartbeat must be at least 1 second (got {heartbeat})")
    if url is None:
        return StorageSpec("journal", str(study_dir / "study.journal"), heartbeat, max_retry)
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme in DB_SCHEMES:
        return StorageSpec("rdb", url, heartbeat, max_retry)
    path = url.removeprefix("journal:")
    if "://" in path:
        raise RunError(
            f"--store '{mask_password(url)}': unknown scheme; use a journal file path or "
            "postgresql://user:password@host/db"
        )
    return StorageSpec("journal", str(Path(path).resolve()), heartbeat, max_retry)


def open_storage(spec: StorageSpec) -> BaseStorage:
    """The Optuna storage for `spec`; RunError with the fix if it cannot be opened."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.kind == "journal":
            path = Path(spec.location)
            path.parent.mkdir(parents=True, exist_ok=True)
            spec.heartbeat_dir.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path), lock_obj=FlockLock(str(path))))
        try:
            return RDBStorage(
                spec.location,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=spec.heartbeat,
                grace_period=spec.grace,
                heartbeat_stale_trial_callback=RetryStale(max_retry=spec.max_retry),
            )
        except Exception as exc:  # SQLAlchemy/driver errors come in many types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(
                f"cannot open study storage '{spec.describe()}' at {_endpoint(spec.location)}: "
                f"{first}; check the URL, that the server is running and that the driver is "
                "installed (psycopg[binary])"
            ) from None


def _endpoint(url: str) -> str:
    """host:port of the database (what an unreachable-server message must name)."""
    from trainlab.studies.claims import endpoint

    try:
        return endpoint(url)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse: its own error says why
        return "an unknown address"


class FlockLock(BaseJournalFileLock):
    """The journal's write lock as an advisory `flock`, which the kernel drops when the
    holder dies.

    Optuna's own file locks (a symlink or an O_EXCL file) outlive a killed writer and make
    every other worker wait out a 30 s grace period; a SIGKILLed trainlab worker must not
    stall the study.
    """

    def __init__(self, journal_path: str) -> None:
        self._path = journal_path + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Block until this process holds the lock."""
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd is None:
            raise RuntimeError("journal lock released without being held")
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_journal_trials(study: optuna.Study, spec: StorageSpec) -> list[int]:
    now = time.time()
    host = socket.gethostname()
    stale = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = spec.heartbeat_dir / f"trial-{t.number}"
        last = beat.stat().st_mtime if beat.is_file() else None
        if last is None and t.datetime_start is not None:
            last = t.datetime_start.timestamp()
        if t.system_attrs.get(HOST_KEY) == host and PID_KEY in t.system_attrs:
            if not _alive(int(t.system_attrs[PID_KEY])):
                stale.append(t._trial_id)
                continue
        if last is not None and now - last > spec.grace:
            stale.append(t._trial_id)
    return stale


def sweep_stale_trials(study: optuna.Study, spec: StorageSpec) -> list[int]:
    """Fail RUNNING trials whose worker is gone and re-queue their parameters.

    Returns the numbers of the trials failed by this call. Safe to run from several
    workers at once: a trial already failed by another is skipped, so it is re-queued once.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.kind == "rdb":
            before = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
            optuna.storages.fail_stale_trials(study)
            return sorted(
                t.number
                for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                if t.number not in before
            )
        failed = []
        for trial_id in _stale_journal_trials(study, spec):
            try:
                study._storage.set_trial_system_attr(trial_id, REASON_KEY, "stale")
                if not study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:  # another worker failed it first
                continue
            frozen = study._storage.get_trial(trial_id)
            requeue(study, frozen, spec.max_retry)
            failed.append(frozen.number)
        return failed


def requeue(study: optuna.Study, failed: FrozenTrial, max_retry: int) -> None:
    """Queue a failed trial's parameters again (Optuna's retry, minus this worker's marks)."""
    attrs = {
        k: v for k, v in failed.system_attrs.items() if k not in (HOST_KEY, PID_KEY, REASON_KEY)
    }
    history = [*attrs.get("retry_history", []), failed.number]
    if len(history) > max_retry:
        return
    attrs.update(failed_trial=attrs.get("failed_trial", failed.number), retry_history=history)
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs=failed.user_attrs,
            system_attrs=attrs,
        )
    )


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial, spec: StorageSpec) -> Iterator[None]:
    """While the block runs, mark the trial with this host/pid and keep its heartbeat fresh.

    For RDB storage Optuna's own heartbeat thread already runs; only host/pid are recorded.
    """
    study._storage.set_trial_system_attr(trial._trial_id, HOST_KEY, socket.gethostname())
    study._storage.set_trial_system_attr(trial._trial_id, PID_KEY, os.getpid())
    if spec.kind != "journal":
        yield
        return
    beat = spec.heartbeat_dir / f"trial-{trial.number}"
    beat.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def touch() -> None:
        while True:
            beat.touch()
            if stop.wait(spec.heartbeat):
                return

    thread = threading.Thread(target=touch, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        beat.unlink(missing_ok=True)
