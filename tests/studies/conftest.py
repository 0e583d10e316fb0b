"""Fixtures shared by the study tests."""

from __future__ import annotations

import os
import subprocess

import pytest

from ..conftest import ROOT


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
