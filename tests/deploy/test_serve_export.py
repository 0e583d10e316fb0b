"""The long serve checks (`-m slow`): Adult's onnx export and an ExportedProgram served,
and `--workers N`.

An export folder is served with the run's own preprocessing (copied into it) and the
artifact instead of the torch model: its labels must equal `Predictor.predict`'s on the
test rows and its probabilities agree within 1e-4 (the MNIST onnx export is checked in
test_serve.py, in the default run).
"""

from __future__ import annotations

import pytest

from tests.deploy import serve_process
from tests.deploy.serve_process import start, stop, wait_ready
from tests.deploy.test_serve import adult_records, assert_same_answers, mnist_test_images, post
from trainlab.deploy.export import export_run
from trainlab.predict import load

trained_runs = serve_process.trained_runs  # the session's runs (a fixture)


def served_export(run_dir, fmt: str, folder, logs):
    """Export `run_dir` as `fmt` into `folder`, serve it; the ready server."""
    result = export_run(run_dir, fmt, out=folder)
    assert result.parity.passed
    return wait_ready(start(folder, logs))


@pytest.mark.slow
def test_served_onnx_export_of_adult_wide_deep_answers_what_predict_answers(trained_runs, tmp_path):
    records = adult_records()
    predictor = load(trained_runs["adult"])
    server = served_export(trained_runs["adult"], "onnx", tmp_path / "adult-onnx", tmp_path)
    try:
        served = post(server, records)
        assert_same_answers(served, predictor.labels(predictor.predict(records)),
                            predictor.predict_proba(records))  # fmt: skip
    finally:
        stop(server)


@pytest.mark.slow
def test_served_pt2_export_answers_what_predict_answers(trained_runs, tmp_path):
    predictor = load(trained_runs["mnist"])
    x = mnist_test_images(predictor)[:500]
    server = served_export(trained_runs["mnist"], "pt2", tmp_path / "mnist-pt2", tmp_path)
    try:
        assert server.client.get("/health").json()["backend"] == "torch.export"
        served = post(server, x.tolist(), chunk=100)
        assert_same_answers(served, predictor.labels(predictor.predict(x)),
                            predictor.predict_proba(x))  # fmt: skip
    finally:
        stop(server)


@pytest.mark.slow
def test_workers_share_one_port_and_answer_alike(trained_runs, tmp_path):
    records = adult_records(400)
    predictor = load(trained_runs["adult"])
    server = wait_ready(start(trained_runs["adult"], tmp_path, "--workers", "2"))
    try:
        assert server.client.get("/health").status_code == 200
        served = post(server, records, chunk=20)  # 20 requests, spread over the workers
        assert [p["label"] for p in served] == predictor.labels(predictor.predict(records))
    finally:
        stop(server)


@pytest.mark.slow
def test_a_text_run_and_its_onnx_export_take_strings(tmp_path, monkeypatch):
    import json

    import trainlab
    from tests.conftest import EXAMPLES
    from trainlab.deploy.backend import load_served
    from trainlab.deploy.serve import Service

    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    recipe = EXAMPLES / "polarity_textcnn.yaml"
    run = trainlab.train(recipe, ["train.epochs=1", "data.train_per_class=300"], out=tmp_path / "t")
    texts = ["a gripping , moving film", "dull and lifeless", "", "the plot? what plot"]
    predictor = load(run.run_dir)
    expected = predictor.labels(predictor.predict(texts))
    assert export_run(run.run_dir, "onnx", out=tmp_path / "t-onnx").parity.passed
    for source in (run.run_dir, tmp_path / "t-onnx"):  # int64 token ids into onnxruntime
        service = Service(load_served(source))
        status, body = service.handle(json.dumps({"instances": texts}).encode(), "application/json")
        assert status == 200
        assert [p["label"] for p in json.loads(body)["predictions"]] == expected
        status, body = service.handle(b'{"instances": ["fine", 3]}', "application/json")
        assert status == 422 and "instance 1 is a number" in json.loads(body)["error"]
