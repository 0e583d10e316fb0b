"""Shared fixtures: an isolated runs folder per test, one torch thread, small recipes."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def cli_process(*args: str, **popen_kw) -> subprocess.Popen:
    """`trainlab` in a child process (one OpenMP thread) that a test can wait for or kill."""
    return subprocess.Popen(
        [sys.executable, "-m", "trainlab.cli", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen_kw,
    )


# Small models run fastest on one thread, and tests never fight each other for cores.
torch.set_num_threads(1)

BREAST_CANCER = {
    "name": "bc",
    "data": {"dataset": "breast_cancer", "preprocessing": {"scale": "standard"}},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 4, "batch_size": 32, "lr": 0.01, "loss": "bce"},
}

DIGITS = {
    "name": "digits",
    "data": {"dataset": "digits", "preprocessing": {"scale": "minmax"}},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.1},
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.01},
}


@pytest.fixture(autouse=True)
def runs_root(tmp_path, monkeypatch) -> Path:
    """Every test writes runs and the SQL index under its own temporary folder."""
    root = tmp_path / "runs"
    monkeypatch.setenv("TRAINLAB_RUNS", str(root))
    monkeypatch.setenv("TRAINLAB_STORE", f"sqlite:///{tmp_path / 'index.db'}")
    return root


@pytest.fixture
def breast_cancer_recipe() -> dict:
    """A binary-classification recipe that trains in well under a second."""
    return copy.deepcopy(BREAST_CANCER)


@pytest.fixture
def digits_recipe() -> dict:
    """A 10-class recipe on scikit-learn's real 8x8 digits."""
    return copy.deepcopy(DIGITS)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the test PostgreSQL server, started on demand."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure_postgres.sh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        message = f"PostgreSQL could not be started: {proc.stderr.strip()[-500:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return proc.stdout.strip().splitlines()[-1]
