"""Serving overhead: `trainlab serve` against a bare onnxruntime session, on this CPU.

For the seed MNIST CNN and Adult Wide & Deep (each trained for one epoch here, then
exported to onnx with `trainlab.deploy.export`), at batch 1 and batch 64:

- **bare**: `InferenceSession.run` on the exported model in this process, on inputs
  already preprocessed, with the service's thread count and session options — the floor;
- **handler**: the service's request handling in this process (`Service.handle`: JSON
  parse, checks, the run's preprocessing, the model, the JSON answer), split into stages;
- **http**: `trainlab serve EXPORT --port 0` in its own process, called over loopback on
  one keep-alive connection (`http.client`), one request at a time; the time includes
  parsing the JSON answer, as a client must.

Each prints requests/s and p50/p99 latency; the overhead is http p50 − bare p50 (ms) and
the ratio http/bare. Two references say where the HTTP time goes: `GET /health` on the
same connection (uvicorn + FastAPI, no body, no model) and the loopback floor — a
plain-socket process answering the same POSTs with a fixed body (ECHO): what any
cross-process HTTP round trip costs on this machine at that moment. The five take turns
in rounds, so a busy spell of the machine lands on all of them alike.

The issue's bar: p50 at batch 1 at most 3 ms above bare onnxruntime. Timings mean
something only on a quiet machine. The last line is one JSON object.

Usage: python bench/serve.py [--requests 400] [--out DIR]  (an --out of an earlier run
reuses its exports instead of training again)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

import trainlab
from trainlab import setup
from trainlab.data.datasets import ADULT_COLUMNS, _adult_table
from trainlab.deploy.backend import load_served, session_options
from trainlab.deploy.export import export_run
from trainlab.deploy.serve import Service, _dumps
from trainlab.deploy.serve_inputs import decode_instances, parse_instances

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
#: (case, recipe, overrides): one epoch each, the seed architectures unchanged
CASES = [
    ("mnist_cnn", "mnist_cnn_bn.yaml", ["train.epochs=1"]),
    ("adult_wide_deep", "adult_wide_deep.yaml", ["train.epochs=1", "train.baselines=none"]),
]
BATCHES = (1, 64)
BAR_MS = 3.0


def stats(seconds: list[float]) -> dict[str, float]:
    """p50/p99 latency (ms) and requests/s of sequential calls."""
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "rps": round(len(ms) / float(np.sum(ms) / 1e3), 1)}  # fmt: skip


def timed(calls: dict, items: dict, n: int, rounds: int = 8, warmup: int = 10) -> dict:
    """Latencies of each `calls[k](item)` over `n` calls cycling through `items[k]`.

    The calls take turns in `rounds` rounds, so that a busy spell of the machine (other
    processes) lands on all of them alike rather than on whichever ran then.
    """
    out: dict = {k: [] for k in calls}
    for k, call in calls.items():
        for i in range(warmup):
            call(items[k][i % len(items[k])])
    per_round = max(1, n // rounds)
    for r in range(rounds):
        for k, call in calls.items():
            for i in range(r * per_round, (r + 1) * per_round):
                item = items[k][i % len(items[k])]
                t = time.perf_counter()
                call(item)
                out[k].append(time.perf_counter() - t)
    return out


def instances(name: str, run_dir: Path) -> list:
    """Raw test inputs as a client sends them: pixel arrays, or Adult records."""
    if name == "mnist_cnn":
        recipe = trainlab.Run.open(run_dir).recipe
        return setup.raw_splits(recipe, setup.load_dataset(recipe)).test.X[:640].tolist()
    numeric = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}
    rows = _adult_table("adult.test").rows[:640]
    return [{n: int(c) if n in numeric and c.isdigit() else c
             for n, c in zip(ADULT_COLUMNS, row, strict=True)} for row in rows]  # fmt: skip


def stages(service: Service, body: bytes, n: int) -> dict[str, float]:
    """Median ms of each step of the handler on one body."""
    model = service.model
    parts: dict[str, list[float]] = {k: [] for k in ("parse", "check", "preprocess", "model",
                                                     "answer")}  # fmt: skip
    for _ in range(n):
        t0 = time.perf_counter()
        items = parse_instances(body, service.limits)
        t1 = time.perf_counter()
        raw = decode_instances(model.encoder, items)
        t2 = time.perf_counter()
        x, _ = model.model_input(raw)
        t3 = time.perf_counter()
        out = model.outputs(x)
        t4 = time.perf_counter()
        _dumps({"predictions": model.decode(out)})
        t5 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            parts[key].append(dt)
    return {k: round(float(np.median(v)) * 1e3, 3) for k, v in parts.items()}


#: The loopback floor: a child process answering every HTTP request with a fixed small
#: JSON body, in a dozen lines of plain sockets (no framework, no parsing beyond the
#: Content-Length): what any cross-process HTTP call costs on this machine right now.
ECHO = r"""
import json, socket
s = socket.create_server(("127.0.0.1", 0))
print(json.dumps({"url": "http://127.0.0.1:%d" % s.getsockname()[1]}), flush=True)
body = b'{"ok":true}'
answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
answer = answer % (len(body), body)
while True:
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while data := c.recv(1 << 20):
        buf += data
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            size = [int(v) for k, _, v in (x.partition(b":") for x in head.split(b"\r\n"))
                    if k.lower() == b"content-length"]
            if len(rest) < (size[0] if size else 0):
                break
            buf = rest[size[0] if size else 0:]
            c.sendall(answer)
"""


def serve(export_dir: Path, log: Path) -> tuple[subprocess.Popen, http.client.HTTPConnection]:
    """`trainlab serve EXPORT --port 0` in a child process, and a keep-alive connection to it
    (the standard library's client: the least client-side time per request)."""
    command = ["-m", "trainlab.cli", "serve", str(export_dir), "--port", "0", "--json"]
    return connect(command, log)


def connect(command: list[str], log: Path) -> tuple[subprocess.Popen, http.client.HTTPConnection]:
    """Start `python COMMAND` (it prints {"url": ...}) and open a keep-alive connection."""
    proc = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE,
                            stderr=log.open("w"), text=True)  # fmt: skip
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"{command} did not start: {log.read_text()[-2000:]}")
    url = urlparse(json.loads(line)["url"])
    for _ in range(600):
        try:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as clients do
            conn.request("GET", "/health")
            conn.getresponse().read()
            return proc, conn
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url.geturl()}/health never answered")


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None):
    """One request on the kept-alive connection; the parsed JSON answer."""
    conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status != 200:
        raise SystemExit(f"{method} {path}: {response.status} {data}")
    return data


def measure(name: str, export_dir: Path, raw: list, n: int, logs: Path) -> dict:
    """bare / handler / http figures of one export at each batch size."""
    import onnxruntime as ort

    proc, conn = serve(export_dir, logs / f"serve-{name}.log")
    echo, floor = connect(["-c", ECHO], logs / "echo.log")
    try:
        threads = request(conn, "GET", "/metadata")["threads"]
        service = Service(load_served(export_dir, threads))
        session = ort.InferenceSession(str(export_dir / "model.onnx"), session_options(threads),
                                       providers=["CPUExecutionProvider"])  # fmt: skip
        out: dict = {"threads": threads}
        for batch in BATCHES:
            groups = [raw[i : i + batch] for i in range(0, len(raw), batch)][:64]
            bodies = [json.dumps({"instances": g}).encode() for g in groups]
            arrays = [service.model.model_input(decode_instances(service.model.encoder, g))[0]
                      for g in groups]  # fmt: skip
            calls = {"bare": lambda x: session.run(None, {"input": x}),
                     "handler": lambda b: service.handle(b, "application/json"),
                     "http": lambda b: request(conn, "POST", "/predict", b),
                     "health": lambda b: request(conn, "GET", "/health"),
                     "loopback": lambda b: request(floor, "POST", "/", b)}  # fmt: skip
            items = {"bare": arrays, **{k: bodies for k in calls if k != "bare"}}
            figures = timed(calls, items, n if batch == 1 else max(40, n // 4))
            bare, handler, http = (stats(figures[k]) for k in ("bare", "handler", "http"))
            row = {"bare": bare, "handler": handler, "http": http,
                   "health": stats(figures["health"]), "loopback": stats(figures["loopback"]),
                   "overhead_p50_ms": round(http["p50_ms"] - bare["p50_ms"], 3),
                   "handler_overhead_p50_ms": round(handler["p50_ms"] - bare["p50_ms"], 3),
                   "ratio_p50": round(http["p50_ms"] / bare["p50_ms"], 2),
                   "stages_ms": stages(service, bodies[0], 50)}  # fmt: skip
            out[f"batch_{batch}"] = row
            print(f"{name} batch {batch:>2}: bare p50 {bare['p50_ms']:.3f} ms  handler "
                  f"{handler['p50_ms']:.3f}  http {http['p50_ms']:.3f} (p99 {http['p99_ms']:.3f}, "
                  f"{http['rps']:.0f} req/s)  overhead {row['overhead_p50_ms']:+.3f} ms  "
                  f"x{row['ratio_p50']:.1f}  | GET /health {row['health']['p50_ms']:.3f}  "
                  f"loopback floor {row['loopback']['p50_ms']:.3f}  stages {row['stages_ms']}",
                  flush=True)  # fmt: skip
    finally:
        for connection, child in ((conn, proc), (floor, echo)):
            connection.close()
            child.terminate()
            child.wait(30)
    return out


def main() -> None:
    """Train, export and measure each case; the JSON summary as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="calls per figure at batch 1")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="serve-bench-"))
    os.environ.setdefault("TRAINLAB_RUNS", str(out / "runs"))
    os.environ.setdefault("TRAINLAB_STORE", f"sqlite:///{out}/index.db")
    results = {}
    started = time.perf_counter()
    for name, recipe, overrides in CASES:
        export_dir = out / f"{name}-onnx"
        if not (export_dir / "export.json").is_file():  # --out of an earlier bench: reused
            t = time.perf_counter()
            run = trainlab.train(EXAMPLES / recipe, overrides, out=out / name)
            exported = export_run(run.run_dir, "onnx", out=export_dir)
            print(f"{name}: test accuracy {run.metrics['test_accuracy']:.4f}, exported "
                  f"(max abs diff {exported.parity.max_abs_diff:.2e}) in "
                  f"{time.perf_counter() - t:.0f}s", flush=True)  # fmt: skip
        raw = instances(name, out / name)
        results[name] = measure(name, export_dir, raw, args.requests, out)
    bar = {name: r["batch_1"]["overhead_p50_ms"] <= BAR_MS for name, r in results.items()}
    print(json.dumps({"bench": "serve", "out": str(out), "bar_ms": BAR_MS, "bar_met": bar,
                      "seconds": round(time.perf_counter() - started, 1),
                      "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()
