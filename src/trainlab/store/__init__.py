"""The run store: run directories on disk plus an SQL index."""

from trainlab.store.index import RunIndex, default_runs_root, default_store_url
from trainlab.store.rundir import RunDir, next_free_run_dir, run_dir_for

__all__ = [
    "RunDir",
    "RunIndex",
    "default_runs_root",
    "default_store_url",
    "next_free_run_dir",
    "run_dir_for",
]
