"""A real `trainlab serve` process for the serve tests: start, wait until it answers, stop."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


@dataclass
class ServerProcess:
    """A running `trainlab serve` child, its URL once known, and an HTTP client on it."""

    proc: subprocess.Popen
    log: Path
    url: str = ""
    client: httpx.Client | None = None

    def stderr(self) -> str:
        """What the server wrote to standard error so far (for failure messages)."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.is_file() else ""


def start(source: Path, log_dir: Path, *args: str) -> ServerProcess:
    """Start `trainlab serve SOURCE --port 0 --json ARGS` on loopback; do not wait."""
    log = log_dir / f"serve-{Path(source).name}-{time.monotonic_ns()}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainlab.cli", "serve", str(source), "--port", "0", "--json",
         *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )  # fmt: skip
    return ServerProcess(proc, log)


def wait_ready(server: ServerProcess, timeout: float = 120.0) -> ServerProcess:
    """Read the URL line the server prints, then poll GET /health until it answers."""
    deadline = time.monotonic() + timeout
    assert server.proc.stdout is not None
    while True:
        ready, _, _ = select.select([server.proc.stdout], [], [], 0.5)
        if ready:
            line = server.proc.stdout.readline()
            if line:
                server.url = json.loads(line)["url"]
                break
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"trainlab serve did not start:\n{server.stderr()}")
    server.client = httpx.Client(base_url=server.url, timeout=60.0)
    while time.monotonic() < deadline:
        try:
            if server.client.get("/health").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{server.url}/health never answered:\n{server.stderr()}")


def stop(*servers: ServerProcess) -> list[int]:
    """Terminate the servers (SIGTERM to all at once, SIGKILL to any still running 15 s
    later); their exit statuses."""
    for server in servers:
        if server.client is not None:
            server.client.close()
        if server.proc.poll() is None:
            server.proc.terminate()
    for server in servers:
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(15)
        if server.proc.stdout is not None:
            server.proc.stdout.close()
    return [server.proc.returncode for server in servers]


#: The served runs: Adult Wide & Deep and the seed MNIST CNN, narrowed and cut to a few
#: hundred training rows per class so that both train in seconds yet predict both ways.
ADULT = ("adult_wide_deep.yaml", ["train.epochs=2", "data.train_per_class=500",
                                  "train.baselines=none", "train.lr=0.01"])  # fmt: skip
MNIST = ("mnist_cnn_bn.yaml", ["train.epochs=1", "data.train_per_class=60",
                               "model.channels=[8,16]", "model.dense=[32]"])  # fmt: skip


#: Trained runs by the session's base temporary folder: each test module that imports
#: the fixture gets its own fixture definition, and all of them share these runs.
_TRAINED: dict[Path, dict[str, Path]] = {}


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """Real runs trained once per test session: {"adult": run dir, "mnist": run dir}."""
    import trainlab
    from tests.conftest import EXAMPLES

    base = tmp_path_factory.getbasetemp()
    if base not in _TRAINED:
        root = tmp_path_factory.mktemp("serve-runs")
        out = {}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TRAINLAB_RUNS", str(root))
            mp.setenv("TRAINLAB_STORE", f"sqlite:///{root / 'index.db'}")
            for name, (recipe, overrides) in {"adult": ADULT, "mnist": MNIST}.items():
                out[name] = trainlab.train(EXAMPLES / recipe, overrides, out=root / name).run_dir
        _TRAINED[base] = out
    return dict(_TRAINED[base])
