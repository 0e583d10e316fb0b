"""`trainlab serve`: a run or an export folder as an HTTP JSON prediction service.

Endpoints: `POST /predict` `{"instances": [...]}` → `{"predictions": [...]}` (the
TensorFlow Serving / KServe v1 convention), `GET /health`, `GET /metadata` (recipe,
metrics, input schema, version), and FastAPI's OpenAPI schema at `/openapi.json` (pages
at `/docs`). Every refused request is a 4xx JSON body `{"error": message, "kind", "status"}`
naming the problem; the service keeps serving. Built on FastAPI + uvicorn: the Python
ecosystem's convention for JSON services, which gives the OpenAPI schema for free and
runs on the asyncio loop without a native extension.

The request handling itself (`Service.handle`: body bytes → status and JSON bytes) knows
nothing of the web framework, so the bench can time it in-process. A large request's
model work runs one at a time in a worker thread (a capacity limiter of 1): its forward
pass does not block `/health`, and concurrent requests do not fight over the cores; a
small one (INLINE_BYTES) is answered on the event loop, quicker than a thread switch.
`--workers N` runs N processes on one listening socket for throughput.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from trainlab.deploy.backend import ServedModel, load_served
from trainlab.deploy.serve_inputs import (
    Limits,
    RequestError,
    check_content_type,
    decode_instances,
    parse_instances,
    too_large,
)
from trainlab.errors import RunError, TrainlabError

try:  # the optional `serve` extra; `require_framework` names the install command
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException
except ImportError:  # pragma: no cover - exercised only without the extra
    FastAPI = None

#: How a `--workers N` worker process learns what to serve (uvicorn starts it afresh).
SOURCE_ENV = "TRAINLAB_SERVE_SOURCE"
LIMITS_ENV = "TRAINLAB_SERVE_LIMITS"
THREADS_ENV = "TRAINLAB_SERVE_THREADS"
#: A body over the limit is read (and dropped) up to this multiple of the limit, so that
#: the client, still sending, receives the 413 instead of a reset connection.
DRAIN_FACTOR = 8
#: Bodies up to this size (one or a few instances) are answered on the event loop: their
#: model call is shorter than the two thread switches a worker thread costs.
INLINE_BYTES = 16 * 1024
log = logging.getLogger("trainlab.serve")


class Service:
    """POST /predict without the web framework: body bytes → (status, JSON bytes)."""

    def __init__(self, model: ServedModel, limits: Limits | None = None) -> None:
        self.model = model
        self.limits = limits or Limits()

    def handle(self, body: bytes, content_type: str | None) -> tuple[int, bytes]:
        """Answer one request; never raises. A refused request is a 4xx with its reason,
        an unexpected failure a 500 with a one-line message (its traceback in a log)."""
        try:
            check_content_type(content_type)
            if len(body) > self.limits.max_body_bytes:
                raise too_large(len(body), self.limits)
            instances = parse_instances(body, self.limits)
            answer = self.model.predict(decode_instances(self.model.encoder, instances))
            return 200, _dumps(answer)
        except RequestError as exc:
            return exc.status, _dumps(exc.to_dict())
        except TrainlabError as exc:  # the run's preprocessing refused an instance
            message = " ".join(str(exc).split())
            return 422, _dumps({"error": message, "kind": "data", "status": 422})
        except Exception as exc:  # a bug: one line back, the traceback in a log
            return 500, _dumps(internal_error(exc, "POST /predict"))

    def metadata(self) -> bytes:
        """GET /metadata's body: the model's facts and this service's limits."""
        return _dumps(_finite({**self.model.metadata(), "limits": asdict(self.limits)}))

    def health(self) -> bytes:
        """GET /health's body."""
        m = self.model
        return _dumps({"status": "ok", "name": m.encoder.recipe.name, "backend": m.backend.name})


def internal_error(exc: BaseException, where: str) -> dict[str, Any]:
    """The 500 body for a bug: one line, no traceback (that goes to a log file)."""
    from trainlab import failures

    path = failures.write_error_log(exc, None, f"trainlab serve {where}")
    log.error("internal error in %s: %s (details in %s)", where, failures.describe(exc), path)
    return {"error": f"internal error: {failures.describe(exc)}", "kind": "internal", "status": 500}


def _dumps(data: Any) -> bytes:
    return json.dumps(data, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as null (metrics can hold them; JSON cannot)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    from trainlab.fileio import jsonable

    return _finite(jsonable(value))


def create_app(service: Service) -> Any:
    """The FastAPI application of `service` (routes, JSON errors, OpenAPI schema)."""
    from trainlab.deploy import serve_openapi

    require_framework()

    app = FastAPI(**serve_openapi.app_info(service.model))
    json_type = "application/json"
    state: dict[str, Any] = {}
    metadata = service.metadata()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Unknown paths and methods: the same JSON error body as every refusal."""
        body = {"error": str(exc.detail), "kind": "http", "status": exc.status_code}
        return Response(_dumps(body), exc.status_code, getattr(exc, "headers", None), json_type)

    @app.post("/predict", **serve_openapi.predict_doc(service))
    async def predict(request: Request) -> Response:
        """Predictions for `{"instances": [...]}`: one per instance, in order."""
        try:
            body = await _read_body(request, service.limits)
        except RequestError as exc:
            headers = {"Connection": "close"}
            return Response(_dumps(exc.to_dict()), exc.status, headers, json_type)
        content_type = request.headers.get("content-type")
        if len(body) <= INLINE_BYTES:
            status, payload = service.handle(body, content_type)
        else:
            if "limiter" not in state:  # created inside the event loop, once
                state["limiter"] = anyio.CapacityLimiter(1)
            status, payload = await anyio.to_thread.run_sync(
                service.handle, body, content_type, limiter=state["limiter"]
            )
        return Response(payload, status, media_type=json_type)

    @app.get("/health", **serve_openapi.health_doc())
    async def health() -> Response:
        """The service is up and holds its model."""
        return Response(service.health(), media_type=json_type)

    @app.get("/metadata", **serve_openapi.metadata_doc())
    async def get_metadata() -> Response:
        """What one instance is, the classes, recipe, metrics, version and limits."""
        return Response(metadata, media_type=json_type)

    return app


async def _read_body(request: Any, limits: Limits) -> bytes:
    """The request body, or a 413 RequestError once it passes the limit (the rest is read
    and dropped, up to DRAIN_FACTOR times the limit, so the client sees the answer)."""
    declared = request.headers.get("content-length", "")
    limit = limits.max_body_bytes
    if declared.isdigit() and int(declared) > DRAIN_FACTOR * limit:
        raise too_large(int(declared), limits)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_FACTOR * limit:
            break
    if size > limit:
        raise too_large(size, limits)
    return b"".join(chunks)


def require_framework() -> None:
    """A RunError naming the install command when FastAPI or uvicorn is missing."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        uvicorn = None
    if FastAPI is None or uvicorn is None:
        raise RunError(
            "trainlab serve needs FastAPI and uvicorn; install them with "
            "pip install 'trainlab[serve]'"
        )


def app_from_environment() -> Any:
    """The app of one `--workers N` worker process: what to serve comes from the
    environment the `trainlab serve` process set before starting its workers."""
    threads = os.environ.get(THREADS_ENV)
    model = load_served(os.environ[SOURCE_ENV], int(threads) if threads else None)
    limits = Limits(**json.loads(os.environ.get(LIMITS_ENV) or "{}"))
    return create_app(Service(model, limits))


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (0: a free port), or a RunError naming why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise RunError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --host or "
            "--port (--port 0 picks a free port)"
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """http://HOST:PORT of a listening socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    source: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    limits: Limits | None = None,
    access_log: bool = False,
    announce: Callable[[ServedModel, str], None] | None = None,
) -> None:
    """Load `source`, listen, call `announce(model, url)`, then serve until interrupted.

    The model is loaded before the socket opens, so a wrong folder is a one-line error
    and a printed URL always answers.
    """
    require_framework()
    import uvicorn

    limits = limits or Limits()
    cores = os.cpu_count() or 1
    threads = max(1, cores // workers) if workers > 1 else None
    model = load_served(source, threads)
    sock = listen(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    options = {"host": bound_host, "port": bound_port, "log_level": "warning",
               "access_log": access_log, "timeout_keep_alive": 30}  # fmt: skip
    if announce is not None:
        announce(model, url_of(sock))
    if workers == 1:
        config = uvicorn.Config(create_app(Service(model, limits)), **options)
        uvicorn.Server(config).run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    os.environ.update({SOURCE_ENV: str(Path(source).resolve()), THREADS_ENV: str(threads),
                       LIMITS_ENV: json.dumps(asdict(limits))})  # fmt: skip
    del model  # each worker loads its own
    app = f"{__name__}:app_from_environment"
    config = uvicorn.Config(app, factory=True, workers=workers, **options)
    Multiprocess(config, sockets=[sock]).run()
