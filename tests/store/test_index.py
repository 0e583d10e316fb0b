"""The run index: concurrent openers of a fresh store, rows upserted by run directory."""

from __future__ import annotations

import multiprocessing as mp

import pytest
from sqlalchemy import create_engine, inspect

from trainlab.store import index as index_module
from trainlab.store.index import RunIndex


@pytest.fixture(autouse=True)
def _fresh_engine_cache(monkeypatch):
    monkeypatch.setattr(RunIndex, "_engines", {})


def test_opening_a_store_another_process_just_created_succeeds(tmp_path, monkeypatch):
    """Reproduces the race: another opener creates the table between our check and create."""
    url = f"sqlite:///{tmp_path / 'index.db'}"
    real_create_all = index_module.metadata.create_all
    calls = []

    def create_all_losing_the_race(engine, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            real_create_all(create_engine(url))  # the other worker wins
            return real_create_all(engine, checkfirst=False)  # our stale "absent" check
        return real_create_all(engine, **kwargs)

    monkeypatch.setattr(index_module.metadata, "create_all", create_all_losing_the_race)
    store = RunIndex(url)
    store.record({"run_dir": "/r/1", "name": "a", "recipe_hash": "h", "status": "done"})
    assert len(calls) == 2
    assert [r["run_dir"] for r in store.list()] == ["/r/1"]


def _open_and_record(url: str, worker: int, barrier) -> None:
    RunIndex._engines = {}
    barrier.wait()
    RunIndex(url).record(
        {"run_dir": f"/r/{worker}", "name": "w", "recipe_hash": "h", "status": "done"}
    )


def test_workers_opening_a_fresh_store_at_once_all_record(tmp_path):
    url = f"sqlite:///{tmp_path / 'index.db'}"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_and_record, args=(url, i, barrier)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert inspect(create_engine(url)).has_table("runs")
    assert sorted(r["run_dir"] for r in RunIndex(url).list()) == [f"/r/{i}" for i in range(4)]


def test_record_updates_the_row_of_the_same_run_dir(tmp_path):
    store = RunIndex(f"sqlite:///{tmp_path / 'index.db'}")
    row = {"run_dir": "/r/1", "name": "a", "recipe_hash": "h", "status": "running"}
    store.record(row)
    store.record({**row, "status": "done", "metrics": {"val_acc": 0.9}})
    rows = store.list()
    assert len(rows) == 1
    assert rows[0]["status"] == "done" and rows[0]["metrics"] == {"val_acc": 0.9}
