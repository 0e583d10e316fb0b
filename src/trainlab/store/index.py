"""The SQL index of runs: a SQLite file by default, any SQLAlchemy URL (e.g. PostgreSQL).

The run directory is the source of truth; the index makes runs listable and lets
studies find their runs. Rows are upserted by run directory.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from trainlab.errors import RunError

metadata = MetaData()

runs_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_dir", String(1024), unique=True, nullable=False),
    Column("name", String(256), nullable=False),
    Column("recipe_hash", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("stop_reason", String(64)),
    Column("dataset", String(128)),
    Column("model", String(128)),
    Column("seed", Integer),
    Column("study", String(256)),
    Column("metrics", JSON),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)


def default_runs_root() -> Path:
    """Where runs go unless told otherwise: $TRAINLAB_RUNS or ./runs."""
    return Path(os.environ.get("TRAINLAB_RUNS", "runs"))


def default_store_url(runs_root: Path | None = None) -> str:
    """$TRAINLAB_STORE, else a SQLite file inside the runs folder."""
    url = os.environ.get("TRAINLAB_STORE")
    if url:
        return url
    root = Path(runs_root or default_runs_root())
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'trainlab.db').resolve()}"


def _create_tables(engine: Any, attempts: int = 5) -> None:
    """Create the tables unless they exist, tolerating another process doing the same.

    `create_all` checks and then creates; two tuning workers opening a fresh store at
    once can both see no table and one then fails with "already exists". Checking
    again after a short pause sees the other's table and has nothing left to do.
    """
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _masked(url: str) -> str:
    """The URL with its password hidden: error messages end up in logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: nothing to hide
        return url


class RunIndex:
    """Read and write run rows through SQLAlchemy."""

    _engines: dict[str, Any] = {}

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_store_url()
        try:
            engine = RunIndex._engines.get(self.url)
            if engine is None:
                connect_args = {"timeout": 30} if self.url.startswith("sqlite") else {}
                engine = create_engine(self.url, connect_args=connect_args)
                _create_tables(engine)
                RunIndex._engines[self.url] = engine
            self.engine = engine
        except SQLAlchemyError as exc:
            raise RunError(
                f"cannot open the run store '{_masked(self.url)}': {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}"
            ) from None

    def record(self, row: dict[str, Any]) -> None:
        """Insert or update the row of `row['run_dir']`."""
        now = datetime.now(timezone.utc)
        values = {
            k: row.get(k)
            for k in (
                "run_dir",
                "name",
                "recipe_hash",
                "status",
                "stop_reason",
                "dataset",
                "model",
                "seed",
                "study",
                "metrics",
            )
        }
        values["metrics"] = json.loads(json.dumps(values.get("metrics") or {}, default=float))
        values["updated_at"] = now
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(runs_table.c.id).where(runs_table.c.run_dir == values["run_dir"])
            ).first()
            if existing:
                conn.execute(
                    runs_table.update().where(runs_table.c.id == existing.id).values(**values)
                )
            else:
                conn.execute(runs_table.insert().values(created_at=now, **values))

    def list(self, study: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Most recent runs first (optionally only those of one study)."""
        query = select(runs_table).order_by(runs_table.c.updated_at.desc()).limit(limit)
        if study is not None:
            query = query.where(runs_table.c.study == study)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
