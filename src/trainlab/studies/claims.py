"""The claims table: how worker processes on several machines share one study's runs.

Every (variant, seed) run of an ablation study is a row of `trainlab_claims` in a shared
SQL database (PostgreSQL across machines; SQLite on one machine). A worker claims a row
atomically — one UPDATE whose WHERE repeats the claimable condition, picking the row with
`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, with a rowcount check on both — and
holds it with a lease that a heartbeat thread renews. A worker that dies stops renewing;
once its lease expires any worker claims the run again. Each claim carries a fresh token,
so a worker whose lease ran out can neither renew nor record a result any more: exactly
one result per run is recorded. Times are the database server's clock, so machines whose
clocks disagree still agree on when a lease expires.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    cast,
    create_engine,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.sql.util import ClauseAdapter

from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RunError

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
BACKENDS = ("postgresql", "sqlite")
CONNECT_TIMEOUT = 10  # seconds before an unreachable server is reported

metadata = MetaData()

studies_table = Table(
    "trainlab_studies",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("spec", Text, nullable=False),  # JSON: what must match for a worker to join
    Column("created_at", Float),
)

claims_table = Table(
    "trainlab_claims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study", String(256), nullable=False),
    Column("variant", String(256), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("worker", String(256)),  # host:pid of the holder, then of the finisher
    Column("token", String(32)),  # one per claim: a re-claimed run's old holder is locked out
    Column("lease_until", Float),
    Column("attempts", Integer, nullable=False),
    Column("run_dir", String(1024)),
    Column("result", Text),  # JSON (NaN allowed, which a JSON column would refuse)
    Column("error", Text),
    Column("claimed_at", Float),
    Column("finished_at", Float),
    UniqueConstraint("study", "variant", "seed", name="trainlab_claims_job"),
)


def worker_id() -> str:
    """This process as the claims table names it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def masked(url: str) -> str:
    """The URL with its password hidden, for messages and results."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def endpoint(url: str) -> str:
    """host:port of a server URL (the default port filled in), or the SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    port = parsed.port or {"postgresql": 5432}.get(parsed.get_backend_name())
    return f"{parsed.host or 'localhost'}:{port}"


def check_store_url(url: str) -> str:
    """`url` if it names a database a study can be shared through, else RunError with the fix."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        backend = None
    if backend not in BACKENDS:
        raise RunError(
            f"--store '{masked(url)}' is not a database URL a study can be shared through; "
            "use postgresql://user:password@host:port/db (several machines) or "
            "sqlite:///path/to/study.db (one machine)"
        )
    return url


@dataclass(frozen=True)
class Claim:
    """One run held by one worker, until its lease runs out."""

    id: int
    study: str
    variant: str
    seed: int
    worker: str
    token: str
    attempts: int


@dataclass(frozen=True)
class JobRow:
    """A run of the study as the database records it."""

    variant: str
    seed: int
    status: str
    worker: str | None
    attempts: int
    result: dict[str, Any] | None
    error: str | None


_ENGINES: dict[str, Engine] = {}


def open_claims(url: str) -> ClaimStore:
    """The claims table at `url`, created if missing; RunError naming host and port if the
    database cannot be reached (the password never appears)."""
    check_store_url(url)
    engine = _ENGINES.get(url)
    try:
        if engine is None:
            sqlite = url.startswith("sqlite")
            args = {"timeout": 30} if sqlite else {"connect_timeout": CONNECT_TIMEOUT}
            engine = create_engine(url, connect_args=args, pool_pre_ping=not sqlite)
            _create_tables(engine)
            _ENGINES[url] = engine
    except (SQLAlchemyError, OSError) as exc:
        raise RunError(_unreachable(url, exc)) from None
    return ClaimStore(url, engine)


def _unreachable(url: str, exc: BaseException) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
    text = " ".join(reason[0].split())[:200]
    password = make_url(url).password
    if password:
        text = text.replace(str(password), "***")
    fix = (
        "check that its folder exists and is writable"
        if make_url(url).get_backend_name() == "sqlite"
        else "start the server (bash scripts/ensure_postgres.sh starts a local one)"
    )
    return (
        f"cannot reach the study database at {endpoint(url)} ({masked(url)}): {text}; "
        f"{fix} or fix --store"
    )


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """Create the tables unless they exist; two workers starting at once may race on it."""
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except IntegrityError:  # PostgreSQL: the other worker's CREATE won
            time.sleep(0.05 * (attempt + 1))
        except SQLAlchemyError as exc:
            if "already exists" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    metadata.create_all(engine)


class ClaimStore:
    """Register a study's runs, claim them one at a time, renew, record, release."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        dialect = engine.dialect.name
        if dialect == "postgresql":
            self.now = cast(func.extract("epoch", func.clock_timestamp()), Float)
        else:  # SQLite: julianday('now') is UTC with millisecond resolution
            self.now = (func.julianday("now") - 2440587.5) * 86400.0

    def register_study(self, name: str, kind: str, spec: dict[str, Any]) -> None:
        """Record the study's spec, or check it against the recorded one: a worker joins a
        study only with the same recipe, mode and changes (seeds may differ)."""
        text = json.dumps(spec, sort_keys=True, default=str)
        for _ in range(3):
            with self.engine.begin() as conn:
                row = conn.execute(
                    select(studies_table.c.kind, studies_table.c.spec).where(
                        studies_table.c.name == name
                    )
                ).first()
            if row is not None:
                _check_same_study(name, self.url, kind, spec, row.kind, json.loads(row.spec))
                return
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(studies_table).values(
                            name=name, kind=kind, spec=text, created_at=time.time()
                        )
                    )
                return
            except IntegrityError:  # another worker registered it first: compare with it
                continue
        raise RunError(f"study '{name}': could not register it in {masked(self.url)}; retry")

    def add_jobs(self, study: str, keys: list[tuple[str, int]]) -> None:
        """Insert the runs not yet in the table; failed ones among `keys` are retried."""
        t = claims_table
        seeds = sorted({s for _, s in keys})
        for _ in range(5):
            try:
                with self.engine.begin() as conn:
                    rows = conn.execute(select(t.c.variant, t.c.seed).where(t.c.study == study))
                    have = {(r.variant, r.seed) for r in rows}
                    missing = [k for k in keys if k not in have]
                    if missing:
                        conn.execute(
                            insert(t),
                            [
                                {"study": study, "variant": v, "seed": s}
                                | {"status": PENDING, "attempts": 0}
                                for v, s in missing
                            ],
                        )
                    conn.execute(
                        update(t)
                        .where(t.c.study == study, t.c.status == FAILED, t.c.seed.in_(seeds))
                        .values(status=PENDING, attempts=0, worker=None, token=None)
                    )
                return
            except IntegrityError:  # another worker inserted some of them at the same time
                time.sleep(0.05)
        raise RunError(f"study '{study}': could not register its runs in {masked(self.url)}")

    def claim(
        self, study: str, seeds: list[int], worker: str, lease: float, max_attempts: int
    ) -> Claim | None:
        """Atomically take one pending run (or one whose lease expired); None if none is left.

        A run whose workers died `max_attempts` times is marked failed instead.
        """
        t = claims_table
        mine = and_(t.c.study == study, t.c.seed.in_(seeds))
        expired = and_(t.c.status == RUNNING, t.c.lease_until < self.now)
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(mine, expired, t.c.attempts >= max_attempts)
                .values(
                    status=FAILED,
                    error=f"its worker stopped {max_attempts} times before finishing it "
                    "(lease expired each time)",
                )
            )
        claimable = and_(mine, or_(t.c.status == PENDING, expired), t.c.attempts < max_attempts)
        token = uuid.uuid4().hex
        take = (
            update(t)
            .where(t.c.id == _pick(claimable), claimable)  # re-checked after any row lock
            .values(
                status=RUNNING,
                worker=worker,
                token=token,
                lease_until=self.now + lease,
                attempts=t.c.attempts + 1,
                claimed_at=self.now,
                error=None,
            )
        )
        for _ in range(50):
            with self.engine.begin() as conn:
                if conn.execute(take).rowcount == 1:
                    row = conn.execute(select(t).where(t.c.token == token)).one()
                    return Claim(row.id, study, row.variant, row.seed, worker, token, row.attempts)
                left = conn.execute(select(func.count()).select_from(t).where(claimable)).scalar()
            if not left:
                return None
            time.sleep(0.01)  # another worker took the row this one picked: pick again
        return None

    def _held(self, claim: Claim):
        t = claims_table
        return and_(t.c.id == claim.id, t.c.token == claim.token, t.c.status == RUNNING)

    def _update_held(self, claim: Claim, **values: Any) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(update(claims_table).where(self._held(claim)).values(**values))
            return res.rowcount == 1

    def renew(self, claim: Claim, lease: float) -> bool:
        """Extend the lease; False when the claim is no longer this worker's."""
        return self._update_held(claim, lease_until=self.now + lease)

    def finish(self, claim: Claim, result: dict[str, Any]) -> bool:
        """Record the run's result; False (nothing written) if the claim was lost."""
        return self._update_held(
            claim,
            status=DONE,
            result=json.dumps(result, default=float),
            run_dir=str(result.get("run_dir") or ""),
            lease_until=None,
            finished_at=self.now,
        )

    def fail(self, claim: Claim, error: str) -> bool:
        """Mark the run failed with its error (retried when a study command starts again)."""
        return self._update_held(claim, status=FAILED, error=error[:2000], lease_until=None)

    def release(self, claim: Claim) -> bool:
        """Give an interrupted run back at once, without counting an attempt."""
        return self._update_held(
            claim,
            status=PENDING,
            worker=None,
            token=None,
            lease_until=None,
            attempts=claims_table.c.attempts - 1,
        )

    def jobs(self, study: str, seeds: list[int]) -> list[JobRow]:
        """The study's runs at these seeds, in the order they were registered."""
        t = claims_table
        query = select(t).where(t.c.study == study, t.c.seed.in_(seeds)).order_by(t.c.id)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        return [
            JobRow(
                r.variant,
                r.seed,
                r.status,
                r.worker,
                r.attempts,
                json.loads(r.result) if r.result else None,
                r.error,
            )
            for r in rows
        ]

    def counts(self, study: str, seeds: list[int]) -> dict[str, int]:
        """Runs per status (pending, running, done, failed) at these seeds."""
        t = claims_table
        query = (
            select(t.c.status, func.count())
            .where(t.c.study == study, t.c.seed.in_(seeds))
            .group_by(t.c.status)
        )
        with self.engine.connect() as conn:
            found = {status: int(n) for status, n in conn.execute(query)}
        return {s: found.get(s, 0) for s in (PENDING, RUNNING, DONE, FAILED)}


def _pick(claimable):
    """The id of the first claimable row; PostgreSQL skips rows another claim has locked.

    The condition is rewritten onto an alias of the table, so the subquery reads the table
    itself instead of correlating with the UPDATE around it.
    """
    pick = claims_table.alias("pick")
    return (
        select(pick.c.id)
        .where(ClauseAdapter(pick).traverse(claimable))
        .order_by(pick.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


def _check_same_study(
    name: str, url: str, kind: str, spec: dict[str, Any], old_kind: str, old: dict[str, Any]
) -> None:
    """RunError naming what differs when a worker brings another study under the same name."""
    if old_kind != kind:
        raise RunError(
            f"study '{name}' in {masked(url)} is a {old_kind} study, not {kind}; "
            "pass another --study name"
        )
    spec = json.loads(json.dumps(spec, sort_keys=True, default=str))
    differs = [k for k in sorted(set(old) | set(spec)) if old.get(k) != spec.get(k)]
    if differs:
        details = "; ".join(f"{k}: {old.get(k)!r} there, {spec.get(k)!r} here" for k in differs)
        raise RunError(
            f"study '{name}' in {masked(url)} was started with a different recipe, mode or "
            f"technique list ({details}); run the first worker's exact command (same recipe, "
            "--set, --techniques, --variant, --mode) to join it, or pass another --study"
        )


class LeaseLost(RunError):
    """This worker's claim on a run expired and another worker took the run over."""


class Heartbeat:
    """While a run trains, renew its lease every `every` seconds from a thread.

    `lost` is set once the claim is no longer this worker's (another worker re-claimed it
    after the lease expired, or the database stayed unreachable for a whole lease).
    """

    def __init__(self, store: ClaimStore, claim: Claim, every: float, lease: float) -> None:
        self.store, self.claim, self.every, self.lease = store, claim, every, lease
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.every):
            try:
                held = self.store.renew(self.claim, self.lease)
            except SQLAlchemyError:  # a blip: try again next beat, unless the lease is gone
                if time.monotonic() - last_ok > self.lease:
                    self.lost.set()
                    return
                continue
            if not held:
                self.lost.set()
                return
            last_ok = time.monotonic()


class LeaseGuard(Technique):
    """Stops a run at the next batch once its claim is lost, so a worker that was cut off
    (paused, partitioned) does not train a run another worker has taken over."""

    def __init__(self, beat: Heartbeat) -> None:
        self.beat = beat

    def on_batch_start(self, state: State) -> None:
        """Raise LeaseLost when the heartbeat reports the claim gone."""
        if self.beat.lost.is_set():
            c = self.beat.claim
            raise LeaseLost(
                f"run {c.variant} seed {c.seed} of study '{c.study}': this worker's lease "
                "expired and another worker took the run over; it stops here"
            )
