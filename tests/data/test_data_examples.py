"""The data chapter's examples reach their bars on real data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import trainlab

from ..conftest import EXAMPLES


def test_adult_pipeline_two_epochs_beats_logistic_regression_level(tmp_path):
    run = trainlab.train(EXAMPLES / "adult_mlp.yaml", {"train.epochs": 2}, out=tmp_path / "a")
    assert run.metrics["test_accuracy"] >= 0.845  # on the official adult.test (16,281 rows)
    pre = json.loads((run.run_dir / "preprocess.json").read_text())
    assert pre["kind"] == "tabular" and pre["config"]["impute"] == "median"
    info = json.loads((run.run_dir / "data.json").read_text())
    assert info["input_shape"] == [6 + 102]  # 6 scaled numbers + one-hot of 8 categoricals


@pytest.mark.slow
def test_adult_mlp_example_reaches_085(tmp_path):
    run = trainlab.train(EXAMPLES / "adult_mlp.yaml", out=tmp_path / "a")
    assert run.metrics["test_accuracy"] >= 0.85


def test_digits_pca_example(tmp_path):
    run = trainlab.train(EXAMPLES / "digits_pca.yaml", out=tmp_path / "d")
    assert run.metrics["test_accuracy"] >= 0.93  # seeds 0-3: 0.950-0.969 on 360 digits
    info = json.loads((run.run_dir / "data.json").read_text())
    assert info["input_shape"] == [16] and info["feature_names"][:2] == ["pc1", "pc2"]


@pytest.mark.slow
def test_pca_sweep_writes_table_and_plot(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "pca_sweep.py"),
            "--out",
            str(tmp_path),
            "--components",
            "2,16,64",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = json.loads(out.strip().splitlines()[-1])["rows"]
    acc = {r["components"]: r["test_accuracy"] for r in rows}
    assert acc[2] < acc[16] <= acc[64] + 0.03 and acc[64] > 0.95
    assert (tmp_path / "pca_sweep.png").stat().st_size > 10_000
