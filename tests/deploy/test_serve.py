"""`trainlab serve` of a run directory: real server processes on loopback, a real client.

The served Adult Wide & Deep and MNIST CNN must answer exactly what `Predictor.predict`
(the code of `trainlab predict`) answers on their test rows; every malformed request must
be a 4xx naming the problem, never a 500, and the service must keep serving.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from tests.deploy import serve_process
from tests.deploy.serve_process import start, stop, wait_ready
from trainlab import setup
from trainlab.data.datasets import ADULT_COLUMNS, _adult_table
from trainlab.deploy.export import export_run
from trainlab.predict import load

trained_runs = serve_process.trained_runs  # the session's runs (a fixture)

#: The test servers' limits: small enough for the fuzz to cross them cheaply.
MAX_MB, MAX_INSTANCES = 1, 2500
ACCEPTED = {200, 400, 413, 415, 422}


@pytest.fixture(scope="module")
def servers(trained_runs, tmp_path_factory):
    """Three servers at once: both runs, and the MNIST run's onnx export (exported while
    the first two start); stopped together at the end of the module."""
    logs = tmp_path_factory.mktemp("serve-logs")
    limits = ("--max-body-mb", str(MAX_MB), "--max-instances", str(MAX_INSTANCES))
    started = {name: start(path, logs, *limits) for name, path in trained_runs.items()}
    try:
        folder = logs / "mnist-onnx"
        assert export_run(trained_runs["mnist"], "onnx", out=folder).parity.passed
        started["mnist-onnx"] = start(folder, logs)
        yield {name: wait_ready(server) for name, server in started.items()}
    finally:
        assert stop(*started.values()) == [0] * len(started)  # SIGTERM: clean shutdowns


def adult_records(limit: int | None = None) -> list[dict]:
    """The official Adult test rows as JSON records: numbers as numbers, '?' kept."""
    table = _adult_table("adult.test")
    numeric = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}
    rows = table.rows[:limit] if limit else table.rows
    return [
        {n: int(c) if n in numeric and c.isdigit() else c
         for n, c in zip(ADULT_COLUMNS, row, strict=True)}
        for row in rows
    ]  # fmt: skip


def post(server, instances, chunk: int = 2000) -> list[dict]:
    """Predictions for `instances`, sent `chunk` at a time."""
    out = []
    for i in range(0, len(instances), chunk):
        r = server.client.post("/predict", json={"instances": instances[i : i + chunk]})
        assert r.status_code == 200, r.text[:500]
        out += r.json()["predictions"]
    return out


def test_served_adult_run_answers_exactly_what_predict_answers(servers, trained_runs):
    records = adult_records()
    records[0]["native-country"] = "Atlantis"  # unseen: encoded as unknown, still predicted
    predictor = load(trained_runs["adult"])
    expected = predictor.labels(predictor.predict(records))
    proba = predictor.predict_proba(records)
    served = post(servers["adult"], records)
    assert len(served) == len(records) == 16281
    assert [p["label"] for p in served] == expected
    assert len(set(expected)) == 2  # the model predicts both classes: a real comparison
    assert [p["class_index"] for p in served] == predictor.predict(records).tolist()
    assert np.abs(np.asarray([p["probabilities"] for p in served]) - proba).max() < 1e-5
    r = servers["adult"].client.post("/predict", json={"instances": records[:3]})
    assert r.json()["unseen_categories"] == {"native-country": 1}


def test_served_mnist_cnn_answers_exactly_what_predict_answers(servers, trained_runs):
    predictor = load(trained_runs["mnist"])
    x = mnist_test_images(predictor)
    expected = predictor.labels(predictor.predict(x))
    # every accepted layout of one instance: (1, 28, 28), (28, 28) and 784 values
    instances = [*x[:800].tolist(), *x[800:1400, 0].tolist(), *x[1400:].reshape(-1, 784).tolist()]
    served = post(servers["mnist"], instances, chunk=100)
    assert len(served) == len(x) == 2000
    assert [p["label"] for p in served] == expected
    assert len(set(expected)) >= 5
    probs = np.asarray([p["probabilities"] for p in served])
    assert probs.shape == (2000, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_served_onnx_export_answers_what_predict_answers(servers, trained_runs):
    predictor = load(trained_runs["mnist"])
    x = mnist_test_images(predictor)
    server = servers["mnist-onnx"]
    meta = server.client.get("/metadata").json()
    assert meta["kind"] == "export" and meta["backend"] == "onnxruntime"
    assert meta["export"]["format"] == "onnx" and meta["input"]["shape"] == [1, 28, 28]
    served = post(server, x.tolist(), chunk=100)
    assert_same_answers(served, predictor.labels(predictor.predict(x)), predictor.predict_proba(x))
    bad = server.client.post("/predict", json={"instances": [[0.5] * 10]})
    assert bad.status_code == 422 and "shape [10]" in bad.json()["error"]


def mnist_test_images(predictor) -> np.ndarray:
    """The run's own test split, raw (N, 1, 28, 28) pixels."""
    recipe = predictor.run.recipe
    return setup.raw_splits(recipe, setup.load_dataset(recipe)).test.X


def assert_same_answers(served: list[dict], labels: list, proba: np.ndarray) -> None:
    """Labels identical, probabilities within 1e-4 (an artifact's kernels may differ)."""
    assert [p["label"] for p in served] == labels
    assert np.abs(np.asarray([p["probabilities"] for p in served]) - proba).max() < 1e-4


def test_health_metadata_and_openapi(servers, trained_runs):
    client = servers["adult"].client
    assert client.get("/health").json()["status"] == "ok"
    meta = client.get("/metadata").json()
    run_metrics = json.loads((trained_runs["adult"] / "metrics.json").read_text())
    assert meta["metrics"]["test_accuracy"] == pytest.approx(run_metrics["test_accuracy"])
    assert meta["recipe"]["model"]["name"] == "wide_deep" and meta["trainlab_version"]
    assert meta["classes"] == ["<=50K", ">50K"] and meta["backend"] == "torch"
    columns = {c["name"]: c for c in meta["input"]["columns"]}
    assert list(columns) == [c for c in ADULT_COLUMNS if c != "income"]
    assert "Bachelors" in columns["education"]["categories"]
    assert meta["limits"] == {"max_body_bytes": MAX_MB * 2**20, "max_instances": MAX_INSTANCES}
    image = servers["mnist"].client.get("/metadata").json()["input"]
    assert image["kind"] == "array" and image["shape"] == [1, 28, 28]
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/health", "/metadata"} <= set(schema["paths"])
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["instances"]


def _bad_cases(record: dict) -> list[tuple[str, bytes, str | None, int, str]]:
    """(server, body, content type, status, words the error must hold)."""
    j = "application/json"
    missing = {k: v for k, v in record.items() if k != "age"}
    text_age = {**record, "age": "old"}
    image = [[0.5] * 28] * 28
    return [
        ("adult", json.dumps({"instances": [missing]}).encode(), j, 422, "lacks column 'age'"),
        ("adult", json.dumps({"instances": [text_age]}).encode(), j, 422, "column 'age'"),
        ("adult", json.dumps({"instances": [{**record, "age": [1]}]}).encode(), j, 422, "a list"),
        ("adult", json.dumps({"instances": [record]}).encode(), "text/plain", 415, "not JSON"),
        ("adult", json.dumps({"instances": [record]}).encode(), None, 415, "application/json"),
        ("adult", b'{"instances": [', j, 400, "not valid JSON"),
        ("adult", b"\xff\xfe\xfa", j, 400, "JSON"),
        ("adult", b"[" * 100_000, j, 400, "nested too deeply"),
        ("adult", b'{"rows": []}', j, 400, 'no "instances"'),
        ("adult", b'{"instances": {"age": 1}}', j, 400, "must be a list"),
        ("adult", b'{"instances": []}', j, 400, "empty"),
        ("adult", b'{"instances": [' + b"{}," * MAX_INSTANCES + b"{}]}", j, 413, "limit of 2,500"),
        ("adult", b" " * (MAX_MB * 2**20 + 1), j, 413, "exceeds the limit"),
        ("mnist", json.dumps({"instances": [[0.5] * 100]}).encode(), j, 422, "shape [100]"),
        ("mnist", json.dumps({"instances": [image, image[:3]]}).encode(), j, 422, "one shape"),
        ("mnist", b'{"instances": [[' + b"NaN," * 783 + b"NaN]]}", j, 422, "NaN"),
        ("mnist", json.dumps({"instances": [[["x"] * 28] * 28]}).encode(), j, 422, "'x'"),
        ("mnist", json.dumps({"instances": [[[1e39] * 28] * 28]}).encode(), j, 422, "infinite"),
    ]


def test_bad_requests_get_a_4xx_naming_the_problem(servers):
    record = adult_records(1)[0]
    for name, body, content_type, status, words in _bad_cases(record):
        headers = {"content-type": content_type} if content_type else {}
        r = servers[name].client.post("/predict", content=body, headers=headers)
        assert r.status_code == status, (name, body[:80], r.text[:300])
        error = r.json()
        assert words in error["error"], (words, error)
        assert error["status"] == status and "Traceback" not in r.text
    client = servers["adult"].client
    assert client.get("/nowhere").json()["status"] == 404
    assert client.get("/predict").status_code == 405
    assert client.post("/predict", json={"instances": [record]}).status_code == 200


def test_a_bug_is_a_500_with_one_line_and_the_service_goes_on(trained_runs, monkeypatch):
    from trainlab.deploy.backend import load_served
    from trainlab.deploy.serve import Service

    service = Service(load_served(trained_runs["adult"]))
    body = json.dumps({"instances": adult_records(2)}).encode()
    assert service.handle(body, "application/json")[0] == 200

    def broken(x):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(service.model, "outputs", broken)
    status, payload = service.handle(body, "application/json")
    error = json.loads(payload)
    assert status == 500 and error["kind"] == "internal"
    assert error["error"] == "internal error: ZeroDivisionError: a bug"


@pytest.mark.parametrize("kind,width", [("multiclass", 5), ("binary", 1), ("regression", 1),
                                        ("regression", 3)])  # fmt: skip
def test_decoded_outputs_equal_what_predict_computes_with_torch(kind, width):
    import torch

    from trainlab.deploy.backend import decode_outputs
    from trainlab.engine.metrics import predictions, scores, unscale
    from trainlab.tasks import TaskInfo

    rng = np.random.default_rng(0)
    out = (rng.normal(size=(300, width)) * 20).astype(np.float32)
    out[0] = 0.0  # a tie, and a logit exactly at the binary threshold
    shift, scale = ([1.5, -2.0, 0.0][:width], [3.0, 0.5, 1.0][:width]) if width > 1 else (7.0, 2.5)
    classes = [f"c{i}" for i in range(max(width, 2))] if kind != "regression" else None
    info = TaskInfo(kind, width, (4,), classes, target_shift=shift, target_scale=scale)
    got = decode_outputs(out, info, lambda index: [classes[i] for i in index])
    t = torch.from_numpy(out)
    if kind == "regression":  # Predictor.outputs then predict
        expected = predictions(unscale(t, shift, scale).to(t.dtype), kind).numpy()
        assert np.array_equal(np.asarray([g["value"] for g in got], dtype=np.float32), expected)
        return
    index = predictions(t, kind).numpy()
    p = scores(t, kind)
    p = np.stack([1 - p, p], axis=1) if p.ndim == 1 else p
    assert [g["class_index"] for g in got] == index.tolist()
    assert [g["label"] for g in got] == [classes[i] for i in index]
    assert np.abs(np.asarray([g["probabilities"] for g in got]) - p).max() < 1e-6


def test_load_refuses_a_folder_that_is_neither_run_nor_export(tmp_path):
    from trainlab.deploy.backend import load_served
    from trainlab.errors import RunError

    with pytest.raises(RunError, match="neither a run directory"):
        load_served(tmp_path)
    with pytest.raises(RunError, match="not found"):
        load_served(tmp_path / "missing")


# ------------------------------------------------------------------------------ fuzz
def _random_value(rng: random.Random, depth: int = 0):
    """A random JSON value: scalars of every kind (huge, tiny, NaN-ish), lists, objects."""
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2**63, -(10 ** rng.randrange(1, 300)), rng.randrange(-9, 9)])
    if kind == 2:
        return rng.choice([1e308, -1e308, 5e-324, 3.4e38, rng.uniform(-1e6, 1e6), math.nan])
    if kind == 3:
        return rng.choice(["", "NaN", "nan", "inf", "-Infinity", "1e999", "?", "\u00e9\u4e2d",
                           "\ud800", "x" * rng.randrange(1, 500), "Bachelors", " 39 "])  # fmt: skip
    if kind == 4:
        return rng.choice(["1" * 400, "0x1f", "1_000", "--1", "[]", "{}"])
    if kind == 5:
        return math.inf if rng.random() < 0.5 else -math.inf
    if kind in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    keys = ["instances", "age", "education", "x", ""]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def _mutated_record(rng: random.Random, record: dict) -> dict:
    r = dict(record)
    for _ in range(rng.randrange(1, 4)):
        column = rng.choice(list(record))
        action = rng.randrange(4)
        if action == 0:
            r.pop(column, None)
        elif action == 1:
            r[column] = _random_value(rng, 2)
        elif action == 2:
            r[column + "_extra"] = _random_value(rng, 3)
        else:
            r[column] = rng.choice(["NaN", None, "?", 10**30, -1e300, "unseen-value", True])
    return r


def _mutated_image(rng: random.Random) -> object:
    image = np.full((28, 28), 0.25).tolist()
    action = rng.randrange(7)
    if action == 0:
        return image[: rng.randrange(0, 28)]  # wrong shape
    if action == 1:
        image[rng.randrange(28)] = image[0][:5]  # ragged
        return image
    if action == 2:
        image[3][4] = _random_value(rng, 3)
        return image
    if action == 3:
        return [[image]] * rng.randrange(1, 3)  # too deep
    if action == 4:
        image[0][0] = rng.choice([1e38, 3e38, -3e38, 1e39, 10**40])
        return image
    if action == 5:
        return rng.choice(["image", 7, None, {"pixels": image}])
    return [[0.1] * 784]


def _fuzz_body(rng: random.Random, server: str, record: dict) -> tuple[bytes, str | None]:
    kind = rng.randrange(9)
    j = "application/json"
    if kind == 0:
        return json.dumps(_random_value(rng)).encode(), j
    if kind == 1:
        return json.dumps({"instances": _random_value(rng)}).encode(), j
    if kind in (2, 3):
        if server == "adult":
            items = [_mutated_record(rng, record) for _ in range(rng.randrange(1, 6))]
        else:
            items = [_mutated_image(rng) for _ in range(rng.randrange(1, 4))]
        return json.dumps({"instances": items}).encode(errors="surrogatepass"), j
    if kind == 4:
        depth = rng.choice([50, 70, 1000, 50_000])
        return b'{"instances": ' + b"[" * depth + b"1" + b"]" * depth + b"}", j
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), j
    if kind == 6:
        good = json.dumps({"instances": [record]}).encode()
        return good[: rng.randrange(len(good))], j
    if kind == 7:
        good = json.dumps({"instances": [record]}).encode()
        types = [None, "text/plain", "application/xml", "multipart/form-data", "", "json",
                 "application/x-www-form-urlencoded", "application/jsonx"]  # fmt: skip
        ct = rng.choice(types)
        return good, ct
    huge = rng.choice([MAX_MB * 2**20 + 10, 3 * MAX_MB * 2**20])
    return b'{"instances": ["' + b"a" * huge + b'"]}', j


def test_fuzz_malformed_bodies_never_get_a_500(servers):
    rng = random.Random(19)
    record = adult_records(1)[0]
    statuses: dict[int, int] = {}
    for i in range(600):
        name = "adult" if i % 2 == 0 else "mnist"
        body, content_type = _fuzz_body(rng, name, record)
        headers = {"content-type": content_type} if content_type is not None else {}
        r = servers[name].client.post("/predict", content=body, headers=headers)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code in ACCEPTED, (name, body[:200], r.text[:500])
        if r.status_code != 200:
            assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert sum(statuses.values()) == 600 and statuses.get(500, 0) == 0
    assert sum(n for s, n in statuses.items() if s != 200) >= 500, statuses
    for name, server in servers.items():
        assert server.proc.poll() is None, f"{name} server died:\n{server.stderr()}"
        assert server.client.get("/health").status_code == 200
    ok = servers["adult"].client.post("/predict", json={"instances": [record]})
    assert ok.status_code == 200 and ok.json()["predictions"][0]["label"] in ("<=50K", ">50K")
