"""The shipped real datasets: exact sizes, official splits, decoding, integrity checks."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from trainlab.data import DATASETS
from trainlab.data import datasets as ds
from trainlab.errors import DataError


def test_adult_official_train_and_test_files():
    data = DATASETS.get("adult").builder(None)
    assert data.X.shape == (32561, 14) and data.X_test.shape == (16281, 14)
    assert data.classes == ["<=50K", ">50K"]
    # counts from adult.names / the datasets README (test labels lose their trailing '.')
    assert int(data.y.sum()) == 7841 and int(data.y_test.sum()) == 3846
    kinds = data.extras["column_kinds"]
    assert kinds.count("numeric") == 6 and kinds.count("categorical") == 8
    assert data.feature_names[0] == "age" and data.X[0, 0] == 39.0
    workclass = data.feature_names.index("workclass")
    # '?' is missing: 1,836 training rows lack a workclass
    assert sum(v is None for v in data.X[:, workclass]) == 1836


def test_rt_polarity_decodes_cp1252_into_5331_sentences_per_class():
    data = DATASETS.get("rt_polarity").builder(None)
    assert data.X.shape == (10662,) and np.bincount(data.y).tolist() == [5331, 5331]
    text = " ".join(data.X)
    assert "é" in text and "\x85" not in text  # 0xE9 decoded as é; 0x85 is "…", not a newline
    assert data.X[5331].startswith("the rock is destined")


def test_cifar10_sample_is_200_real_images_of_all_10_classes():
    data = DATASETS.get("cifar10_sample").builder(None)
    assert data.X.shape == (200, 3, 32, 32) and data.X.dtype == np.float32
    assert np.bincount(data.y, minlength=10).tolist() == [14, 28, 22, 21, 19, 19, 18, 21, 15, 23]
    assert data.classes[data.y[0]] == "frog"  # trainLabels.csv: 1.png,frog
    assert 0.0 <= data.X.min() and data.X.max() <= 1.0 and data.X.std() > 0.1


def test_a_corrupted_shipped_file_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "rt_polarity"
    folder.mkdir()
    raw = gzip.decompress((ds.FILES / "rt_polarity" / "rt-polarity.neg.gz").read_bytes())
    (folder / "rt-polarity.neg.gz").write_bytes(gzip.compress(raw.replace(b"the", b"teh", 1)))
    shutil.copy(ds.FILES / "rt_polarity" / "rt-polarity.pos.gz", folder)
    monkeypatch.setattr(ds, "FILES", tmp_path)
    with pytest.raises(DataError, match="corrupt"):
        DATASETS.get("rt_polarity").builder(None)


def test_datasets_command_lists_sizes(capsys):
    import json

    from typer.testing import CliRunner

    from trainlab.cli import app

    result = CliRunner().invoke(app, ["datasets", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout.strip().splitlines()[-1])["datasets"]}
    assert {
        "mnist",
        "adult",
        "rt_polarity",
        "cifar10_sample",
        "digits",
        "iris",
        "wine",
        "breast_cancer",
        "diabetes",
        "csv",
        "npy",
        "image_folder",
        "text",
        "cifar10_binary",
    } <= set(rows)
    assert rows["adult"]["samples"] == 48842 and rows["adult"]["classes"] == 2
    assert rows["mnist"]["features"] == "1x28x28" and rows["diabetes"]["task"] == "regression"
    assert rows["csv"]["source"] == "local file"
