"""Users' own files: CSV/TSV, NumPy, image folders, text, CIFAR-10 binary — and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainlab
from trainlab.data import DATASETS
from trainlab.errors import DataError

from ..conftest import EXAMPLES

CENSUS = EXAMPLES / "data" / "census_sample.csv"


def _load(name: str, **params):
    entry = DATASETS.get(name)
    return entry.builder(entry.params(**params))


def _write(path, text: str):
    path.write_text(text)
    return path


def test_csv_detects_types_and_missing_markers():
    data = _load("csv", path=str(CENSUS), target="income")
    assert data.X.shape == (2000, 14) and data.classes == ["<=50K", ">50K"]
    kinds = dict(zip(data.feature_names, data.extras["column_kinds"], strict=True))
    assert kinds["age"] == "numeric" and kinds["workclass"] == "categorical"
    assert [k for k, v in kinds.items() if v == "numeric"] == [
        "age",
        "fnlwgt",
        "education-num",
        "capital-gain",
        "capital-loss",
        "hours-per-week",
    ]
    occupation = data.feature_names.index("occupation")
    assert (
        sum(v is None for v in data.X[:, occupation]) == 123
    )  # "?" cells (awk -F, '$7=="?"' agrees)


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiter_is_detected(tmp_path, sep):
    rows = ["a,b,label", "1.5,x,yes", "2.5,y,no", "3.5,x,yes"]
    path = _write(tmp_path / "t.csv", "\n".join(r.replace(",", sep) for r in rows) + "\n")
    data = _load("csv", path=str(path), target="label")
    assert data.X.shape == (3, 2) and data.extras["column_kinds"] == ["numeric", "categorical"]
    assert data.y.tolist() == [1, 0, 1]


def test_overrides_and_custom_missing_markers(tmp_path):
    path = _write(
        tmp_path / "t.csv", "zip,city,y\n1001,unknown,1.5\n2002,Paris,2.25\n1001,Rome,3.5\n"
    )
    data = _load("csv", path=str(path), target="y", categorical=["zip"], missing=["unknown"])
    assert data.task == "regression" and data.y.dtype == np.float32
    assert data.extras["column_kinds"] == ["categorical", "categorical"]
    assert data.X[0, 1] is None and data.X[0, 0] == "1001"


def test_missing_target_column_is_named(tmp_path):
    with pytest.raises(
        DataError, match="target column 'price' not found; columns are age, workclass"
    ):
        _load("csv", path=str(CENSUS), target="price")


def test_text_in_a_numeric_column_is_named(tmp_path):
    rows = ["x,y"] + [f"{i},{i % 2}" for i in range(20)] + ["twelve,0"]
    path = _write(tmp_path / "t.csv", "\n".join(rows) + "\n")
    # inferred: one repeated text value in a column of numbers marks a missing value
    data = _load("csv", path=str(path), target="y")
    (col,) = data.extras["table"]["schema"]["columns"]
    assert col["role"] == "numeric" and col["markers"] == ["twelve"]
    assert np.isnan(data.X[20, 0]) and data.X[3, 0] == 3.0
    # declared numeric: the text is refused, naming the row and the fixes
    with pytest.raises(DataError, match=r"column 'x' is numeric but row 21 holds text 'twelve'"):
        _load("csv", path=str(path), target="y", numeric=["x"])


def test_empty_file_is_named(tmp_path):
    path = _write(tmp_path / "empty.csv", "")
    with pytest.raises(DataError, match="empty.csv' is empty"):
        _load("csv", path=str(path), target="y")
    header_only = _write(tmp_path / "h.csv", "a,y\n")
    with pytest.raises(DataError, match="no data rows"):
        _load("csv", path=str(header_only), target="y")


def test_numpy_files_never_unpickle(tmp_path):
    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=X, y=y)
    data = _load("npy", path=str(tmp_path / "d.npz"))
    assert data.task == "classification" and data.classes == ["0", "1", "2"]
    assert np.array_equal(data.X, X)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y.astype(np.float32) / 3)
    assert (
        _load("npy", path=str(tmp_path / "x.npy"), targets=str(tmp_path / "y.npy")).task
        == "regression"
    )
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 30, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="object arrays are refused"):
        _load("npy", path=str(tmp_path / "obj.npy"), targets=str(tmp_path / "y.npy"))


@pytest.fixture
def image_folder(tmp_path):
    """The first 60 shipped CIFAR-10 PNGs sorted into class folders (real images)."""
    from PIL import Image

    cifar = DATASETS.get("cifar10_sample").builder(None)
    root = tmp_path / "images"
    for i in range(60):
        folder = root / cifar.classes[cifar.y[i]]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (cifar.X[i].transpose(1, 2, 0) * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return root, cifar


def test_image_folder_reads_png_losslessly(image_folder):
    root, cifar = image_folder
    data = _load("image_folder", path=str(root))
    assert data.X.shape == (60, 3, 32, 32)
    assert data.classes == sorted({cifar.classes[c] for c in cifar.y[:60]})
    first_frog = data.X[data.y == data.classes.index("frog")][0]
    assert any(np.array_equal(first_frog, cifar.X[i]) for i in range(60))


def test_corrupt_image_fails_by_default_and_can_be_skipped(image_folder):
    root, _ = image_folder
    (root / "frog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"broken.png' is corrupt.*corrupt: skip"):
        _load("image_folder", path=str(root))
    with pytest.warns(UserWarning, match="skipped 1 undecodable"):
        data = _load("image_folder", path=str(root), corrupt="skip")
    assert len(data.y) == 60


def test_cifar10_binary_roundtrip(tmp_path):
    cifar = DATASETS.get("cifar10_sample").builder(None)
    pixels = (cifar.X * 255).round().astype(np.uint8).reshape(200, -1)
    records = np.concatenate([cifar.y.astype(np.uint8)[:, None], pixels], axis=1)
    records[:150].tofile(tmp_path / "data_batch_1.bin")
    records[150:].tofile(tmp_path / "test_batch.bin")
    data = _load(
        "cifar10_binary",
        paths=[str(tmp_path / "data_batch_1.bin")],
        test_paths=[str(tmp_path / "test_batch.bin")],
    )
    assert data.X.shape == (150, 3, 32, 32) and data.X_test.shape == (50, 3, 32, 32)
    assert np.allclose(data.X, cifar.X[:150]) and np.array_equal(data.y_test, cifar.y[150:])
    (tmp_path / "bad.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="not a CIFAR-10 binary batch"):
        _load("cifar10_binary", paths=[str(tmp_path / "bad.bin")])


def test_text_from_class_files_and_from_csv(tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "neg.txt").write_bytes(b"dull \x97 and slow\nawful\n")  # cp1252 em dash
    (folder / "pos.txt").write_bytes(b"a caf\xe9 delight \x85\n")  # é and an ellipsis
    data = _load("text", path=str(folder), encoding="cp1252")
    assert data.X.tolist() == ["dull — and slow", "awful", "a café delight …"]
    assert data.classes == ["neg", "pos"] and data.y.tolist() == [0, 0, 1]
    csv = _write(tmp_path / "t.csv", 'review,stars\n"good, really",5\nbad,1\n')
    data = _load("text", path=str(csv), text_column="review", target="stars")
    assert data.X.tolist() == ["good, really", "bad"] and data.classes == ["1", "5"]


def test_users_csv_trains_end_to_end_and_predicts_raw_rows(tmp_path, monkeypatch):
    from trainlab.predict import read_inputs

    monkeypatch.chdir(EXAMPLES.parent)
    run = trainlab.train(EXAMPLES / "csv_train.yaml", {"train.epochs": 4}, out=tmp_path / "run")
    assert run.metrics["test_accuracy"] >= 0.78  # majority class is 0.76 on this sample
    model = trainlab.load(run.run_dir)
    rows = CENSUS.read_text().splitlines()
    inputs = tmp_path / "new.csv"
    # columns in another order, target dropped, an unseen category
    header = rows[0].split(",")
    order = list(reversed(header[:-1]))
    lines = [",".join(order)]
    for line in rows[1:6]:
        cells = dict(zip(header, line.split(","), strict=True))
        cells["native-country"] = "Atlantis"
        lines.append(",".join(cells[c] for c in order))
    inputs.write_text("\n".join(lines) + "\n")
    preds = model.predict(read_inputs(inputs))
    assert preds.shape == (5,) and set(preds.tolist()) <= {0, 1}
    from typer.testing import CliRunner

    from trainlab.cli import app

    result = CliRunner().invoke(app, ["predict", str(run.run_dir), str(inputs), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["indices"] == preds.tolist()
    inputs.write_text("\n".join(line.split(",", 1)[1] for line in lines) + "\n")
    with pytest.raises(DataError, match="lacks training column"):
        model.predict(read_inputs(inputs))


def test_regression_tsv_trains_with_auto_task(tmp_path):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    names = [*d.feature_names, "progression"]
    lines = ["\t".join(names)] + [
        "\t".join(f"{v:.6g}" for v in (*row, t)) for row, t in zip(d.data, d.target, strict=True)
    ]
    path = _write(tmp_path / "diabetes.tsv", "\n".join(lines) + "\n")
    recipe = {
        "data": {"dataset": {"name": "csv", "path": str(path), "target": "progression"}},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 30, "lr": 0.01},
    }
    run = trainlab.train(recipe, out=tmp_path / "run")
    info = json.loads((run.run_dir / "data.json").read_text())
    assert info["target_kind"] == "regression" and info["input_shape"] == [10]
    # scikit-learn's linear regression reaches ~0.45; this 30-epoch MLP gives R² 0.26-0.33
    # over seeds 0-5 (0.313 at seed 0), so > 0.3 was a coin toss on another machine.
    # Above 0.2 it has learnt far more than the mean predictor (R² 0).
    assert run.metrics["test_r2"] > 0.2
