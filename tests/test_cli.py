"""The command-line contract: --json last line, one-line errors, no tracebacks."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from unittest import mock

import numpy as np
import pytest
import yaml

from trainlab.cli import main

from .conftest import EXAMPLES


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str) -> Result:
    """Run the real entry point in-process (a subprocess per call would cost ~3 s)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with (
        mock.patch.object(sys, "argv", ["trainlab", *args]),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


def subprocess_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed command in a fresh process, for what in-process runs cannot show."""
    return subprocess.run(
        [sys.executable, "-m", "trainlab.cli", *args], capture_output=True, text=True, timeout=300
    )


def last_json(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def trained(tmp_path, breast_cancer_recipe):
    path = tmp_path / "bc.yaml"
    path.write_text(yaml.safe_dump(breast_cancer_recipe))
    result = cli("train", str(path), "--out", str(tmp_path / "run"), "--json")
    assert result.returncode == 0, result.stderr
    return tmp_path / "run", last_json(result)


def test_train_json_has_run_dir_and_metrics(trained):
    run_dir, summary = trained
    assert summary["run_dir"] == str(run_dir)
    assert summary["status"] == "completed"
    assert summary["metrics"]["test_accuracy"] > 0.9
    for name in (
        "recipe.yaml",
        "run.json",
        "metrics.json",
        "history.jsonl",
        "model.safetensors",
        "preprocess.json",
        "data.json",
    ):
        assert (run_dir / name).is_file(), name
    info = json.loads((run_dir / "run.json").read_text())
    assert info["environment"]["versions"]["torch"]
    assert info["determinism"]["threads"] >= 1
    timings = info["timings"]
    assert 0 < timings["fit_seconds"] <= timings["total_seconds"]
    assert timings["fit_cpu_seconds"] > 0
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == 4


def test_evaluate_reproduces_training_metrics(trained):
    run_dir, summary = trained
    result = cli("evaluate", str(run_dir), "--json")
    assert result.returncode == 0, result.stderr
    metrics = last_json(result)["metrics"]
    assert metrics["test_accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"])
    assert metrics["test_loss"] == pytest.approx(summary["metrics"]["test_loss"], rel=1e-5)


def test_predict_from_npy_csv_and_python_agree(trained, tmp_path):
    run_dir, _ = trained
    from sklearn.datasets import load_breast_cancer

    import trainlab

    X = load_breast_cancer().data[:25].astype(np.float32)
    y = load_breast_cancer().target[:25]
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "x.npz", x=X)
    np.savetxt(
        tmp_path / "x.csv",
        X,
        delimiter=",",
        header=",".join(f"f{i}" for i in range(30)),
        comments="",
    )
    py = trainlab.load(run_dir).predict(X)
    assert (py == y).mean() > 0.85  # raw rows: the saved scaler is applied automatically
    for name in ("x.npy", "x.npz", "x.csv"):
        result = cli("predict", str(run_dir), str(tmp_path / name), "--json")
        assert result.returncode == 0, result.stderr
        assert last_json(result)["indices"] == py.tolist()
    result = cli("predict", str(run_dir), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.csv"))
    assert result.returncode == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert (
        lines[0] == "prediction" and len(lines) == 26 and set(lines[1:]) <= {"malignant", "benign"}
    )


def _one_line_error(result):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    text = result.stderr.strip()
    assert text.startswith("error:") and len(text.splitlines()) == 1, text
    return text


def test_predict_with_wrong_feature_count_is_a_clear_error(trained, tmp_path):
    run_dir, _ = trained
    np.save(tmp_path / "bad.npy", np.zeros((3, 7), np.float32))
    text = _one_line_error(cli("predict", str(run_dir), str(tmp_path / "bad.npy")))
    assert "7 features" in text and "expects 30" in text


@pytest.mark.parametrize(
    ("recipe_text", "expected"),
    [
        ("data: {dataset: digits}\nmodel: mlp\ntrain: {lr: -1}\n", "train.lr"),
        ("data: {dataset: digits}\nmodel: mlp\ntrain: {optimizer: adamw2}\n", "did you mean"),
        ("data: {dataset: digitz}\nmodel: mlp\n", "did you mean 'digits'"),
        ("data: {dataset: digits}\nmodel: mlp\nextra: 1\n", "unknown key 'extra'"),
        ("data: !!python/name:os.system\nmodel: mlp\n", "python tags are not allowed"),
    ],
)
def test_recipe_mistakes_exit_nonzero_with_one_line(tmp_path, recipe_text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(recipe_text)
    assert expected in _one_line_error(cli("train", str(path)))


def test_missing_recipe_file_in_a_real_process(tmp_path):
    result = subprocess_cli("train", str(tmp_path / "missing.yaml"))
    assert "not found" in _one_line_error(result)


def test_run_name_cannot_escape_the_runs_folder(tmp_path):
    text = _one_line_error(cli("train", str(EXAMPLES / "breast_cancer_mlp.yaml"), "--name", "../x"))
    assert "not allowed" in text
    assert not (tmp_path / "x").exists()


def test_listing_commands_print_json(tmp_path):
    for command, key, name in (
        ("datasets", "datasets", "mnist"),
        ("models", "models", "mlp"),
        ("optimizers", "optimizers", "adam"),
    ):
        result = cli(command, "--json")
        assert result.returncode == 0, result.stderr
        assert name in [row["name"] for row in last_json(result)[key]]


def test_runs_lists_trained_runs(trained):
    result = cli("runs", "--json")
    assert result.returncode == 0, result.stderr
    rows = last_json(result)["runs"]
    assert any(r["name"] == "run" and r["status"] == "completed" for r in rows)


def test_divergence_exits_3_after_printing_the_json(tmp_path):
    path = tmp_path / "boom.yaml"
    path.write_text(
        "data: {dataset: diabetes}\nmodel: {name: mlp, hidden: [64, 64]}\n"
        "train: {epochs: 3, optimizer: sgd, lr: 10.0}\n"
    )
    result = cli("train", str(path), "--out", str(tmp_path / "run"), "--json")
    assert result.returncode == 3
    assert last_json(result)["status"] == "diverged"
    text = _one_line_error(result)
    assert "diverged" in text and "loss became" in text and "Lower train.lr" in text
