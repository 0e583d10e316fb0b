"""k-fold / stratified k-fold splits and `cv: k` runs reported as mean ± std."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainlab
from trainlab.data import DATASETS
from trainlab.data.splits import canonical_split, fold_split
from trainlab.errors import DataError


def test_folds_partition_the_non_test_data_stratified_and_deterministic():
    from trainlab.data.arrays import ArrayData

    iris = DATASETS.get("iris").builder(None)
    data = ArrayData(
        np.arange(150, dtype=np.float32)[:, None], iris.y, "classification", iris.classes
    )
    test = canonical_split(data, seed=3).test
    folds = [fold_split(data, 5, f, seed=3) for f in range(5)]
    for s in folds:
        np.testing.assert_array_equal(s.test.X, test.X)  # the test split never moves
        assert len(s.train) + len(s.val) == 120
        assert not set(s.train.X[:, 0]) & set(s.val.X[:, 0])
        assert np.bincount(s.val.y).tolist() == [8, 8, 8]  # 40 per class / 5 folds
    every_val = np.sort(np.concatenate([s.val.X[:, 0] for s in folds]))
    rest = np.sort(np.setdiff1d(np.arange(150), test.X[:, 0]))
    np.testing.assert_array_equal(every_val, rest)  # each non-test sample validates once
    np.testing.assert_array_equal(fold_split(data, 5, 2, seed=3).val.X, folds[2].val.X)
    assert not np.array_equal(fold_split(data, 5, 2, seed=4).val.X, folds[2].val.X)


def test_regression_uses_plain_kfold():
    data = DATASETS.get("diabetes").builder(None)
    s = fold_split(data, 4, 0)
    assert len(s.val) in (88, 89) and len(s.test) == 89


def test_too_few_samples_of_a_class_for_k_folds():
    from trainlab.data.arrays import ArrayData

    X = np.zeros((40, 2), np.float32)
    y = np.array([0] * 36 + [1] * 4)
    with pytest.raises(DataError, match="cannot make 5 stratified folds: class 1 has only 3"):
        fold_split(ArrayData(X, y, "classification", ["a", "b"]), 5, 0)


def test_cv_recipe_trains_k_runs_and_reports_mean_and_std(tmp_path):
    recipe = {
        "name": "iris-cv",
        "data": {"dataset": "iris", "preprocessing": {"scale": "standard"}, "cv": 3},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 15, "lr": 0.02},
    }
    run = trainlab.train(recipe, out=tmp_path / "cv")
    folds = json.loads((tmp_path / "cv" / "cv.json").read_text())["folds"]
    accs = [f["metrics"]["val_accuracy"] for f in folds]
    assert len(folds) == 3 and all(
        (tmp_path / "cv" / f"fold-{i}" / "model.safetensors").is_file() for i in range(3)
    )
    assert run.metrics["val_accuracy"] == pytest.approx(np.mean(accs))
    assert run.metrics["val_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert run.metrics["val_accuracy"] > 0.8
    # the whole cross-validation is a row of the run index, with mean and std
    from trainlab.store.index import RunIndex

    rows = {r["run_dir"]: r for r in RunIndex().list()}
    parent = rows[str((tmp_path / "cv").resolve())]
    assert parent["status"] == "completed" and parent["name"] == "cv"
    assert parent["metrics"]["val_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert str((tmp_path / "cv" / "fold-2").resolve()) in rows
    # a fold is an ordinary run of the same recipe with data.fold set
    fold1 = trainlab.load(tmp_path / "cv" / "fold-1")
    assert fold1.run.recipe.data.fold == 1
    # re-evaluation rebuilds the fold's own validation rows
    assert fold1.evaluate("val")["val_accuracy"] == pytest.approx(
        folds[1]["metrics"]["val_accuracy"]
    )
