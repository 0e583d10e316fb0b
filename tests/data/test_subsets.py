"""`data.classes` (keep and relabel some classes) and `data.train_per_class` (few labels)."""

from __future__ import annotations

import numpy as np
import pytest

import trainlab
from trainlab import setup
from trainlab.config.loading import recipe_hash
from trainlab.data import DATASETS
from trainlab.data.arrays import ArrayData, Split
from trainlab.data.splits import canonical_split, fold_split
from trainlab.data.subsets import limit_per_class, resolve_classes
from trainlab.errors import DataError, RecipeError
from trainlab.prepare import prepare


def _recipe(dataset="digits", **data):
    return trainlab.load_recipe(
        {"data": {"dataset": dataset, **data}, "model": {"name": "mlp", "hidden": [8]}}
    )


def _indexed(name: str) -> ArrayData:
    """A built-in dataset whose single feature is the row number, to follow rows."""
    d = DATASETS.get(name).builder(None)
    return ArrayData(np.arange(len(d.y), dtype=np.float32)[:, None], d.y, d.task, d.classes)


def _rows(split: Split) -> np.ndarray:
    return split.X[:, 0].astype(int)


def test_kept_classes_are_the_canonical_rows_of_those_classes_relabelled_in_order():
    data = _indexed("digits")
    full = canonical_split(data, 0.2, 0.1, 0)
    kept = setup.raw_splits(_recipe(classes=[4, 0, 2, 1, 3]), data)
    order = [4, 0, 2, 1, 3]
    for name in ("train", "val", "test"):
        whole, part = getattr(full, name), getattr(kept, name)
        mask = np.isin(whole.y, order)
        np.testing.assert_array_equal(_rows(part), _rows(whole)[mask])  # same rows, same order
        np.testing.assert_array_equal(np.asarray(order)[part.y], whole.y[mask])  # j ↔ order[j]
    assert sorted(set(kept.test.y.tolist())) == [0, 1, 2, 3, 4]
    assert len(kept.test) == int(np.isin(full.test.y, order).sum()) == 180


def test_task_info_names_the_original_classes_and_sizes_the_head():
    p = prepare(_recipe(classes=[9, 7, 5]))
    assert p.info.classes == ["9", "7", "5"] and p.info.output_dim == 3
    assert set(p.splits.train.y.tolist()) == {0, 1, 2}
    bce = trainlab.load_recipe(
        {
            "data": {"dataset": "digits", "classes": [3, 8]},
            "model": {"name": "mlp", "hidden": [8]},
            "train": {"loss": "bce"},
        }
    )
    info = prepare(bce).info  # 2 of 10 classes: a binary task
    assert info.classes == ["3", "8"] and info.output_dim == 1


def test_train_per_class_keeps_exactly_n_deterministically_and_leaves_val_and_test():
    data = _indexed("digits")
    full = setup.raw_splits(_recipe(), data)
    few = setup.raw_splits(_recipe(train_per_class=10), data)
    assert np.bincount(few.train.y).tolist() == [10] * 10
    assert set(_rows(few.train)) <= set(_rows(full.train))
    np.testing.assert_array_equal(_rows(few.val), _rows(full.val))
    np.testing.assert_array_equal(_rows(few.test), _rows(full.test))
    again = setup.raw_splits(_recipe(train_per_class=10), data)
    np.testing.assert_array_equal(_rows(again.train), _rows(few.train))
    more = setup.raw_splits(_recipe(train_per_class=20), data)
    assert set(_rows(few.train)) < set(_rows(more.train))  # one permutation: nested subsets
    other = setup.raw_splits(_recipe(train_per_class=10, split_seed=1), data)
    assert np.bincount(other.train.y).tolist() == [10] * 10
    assert len(set(_rows(other.train)) & set(_rows(few.train))) < 50


def test_limit_per_class_is_the_first_n_of_each_class_in_the_seeded_permutation():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=np.int64)
    split = Split(np.arange(8)[:, None], y)
    order = np.random.default_rng(7).permutation(8)
    want = sorted([*order[y[order] == 0][:2], *order[y[order] == 1][:2]])
    assert _rows(limit_per_class(split, 2, 7, ["a", "b"])).tolist() == want
    picks = {tuple(_rows(limit_per_class(split, 2, s, ["a", "b"]))) for s in range(6)}
    assert len(picks) > 1  # the seed chooses


def test_classes_and_train_per_class_together():
    few = setup.raw_splits(
        _recipe(classes=[5, 6], train_per_class=7, split_seed=3), _indexed("digits")
    )
    assert np.bincount(few.train.y).tolist() == [7, 7]
    assert set(few.val.y.tolist()) == set(few.test.y.tolist()) == {0, 1}


def test_cv_folds_are_filtered_the_same_way_with_the_canonical_test_rows():
    data = _indexed("digits")
    recipe = _recipe(classes=[1, 0], train_per_class=5, cv=3, fold=1)
    fold = setup.raw_splits(recipe, data)
    whole = fold_split(data, 3, 1)
    for name in ("val", "test"):
        mask = np.isin(getattr(whole, name).y, [0, 1])
        np.testing.assert_array_equal(_rows(getattr(fold, name)), _rows(getattr(whole, name))[mask])
    canonical_test = canonical_split(data).test
    np.testing.assert_array_equal(
        _rows(fold.test), _rows(canonical_test)[np.isin(canonical_test.y, [0, 1])]
    )
    assert np.bincount(fold.train.y).tolist() == [5, 5]
    assert set(_rows(fold.train)) <= set(_rows(whole.train))
    assert fold.val.y.tolist() == [1 - c for c in whole.val.y[np.isin(whole.val.y, [0, 1])]]


def test_string_labels_of_a_csv_by_name_or_index(tmp_path):
    rows = [f"{i % 7},{(i * 3) % 5},{['cat', 'dog', 'bird'][i % 3]}" for i in range(90)]
    path = tmp_path / "pets.csv"
    path.write_text("a,b,kind\n" + "\n".join(rows) + "\n")
    spec = {"name": "csv", "path": str(path), "target": "kind"}
    p = prepare(_recipe(spec, classes=["dog", "cat"], train_per_class=5))
    assert p.info.classes == ["dog", "cat"] and p.info.output_dim == 2
    assert np.bincount(p.splits.train.y).tolist() == [5, 5]
    assert len(p.splits.test) == 12  # 18 test rows, 6 per class, 12 of dog or cat
    by_index = prepare(_recipe(spec, classes=[2, 1]))  # classes sorted: bird, cat, dog
    assert by_index.info.classes == ["dog", "cat"]
    np.testing.assert_array_equal(by_index.splits.test.y, p.splits.test.y)
    bc = prepare(_recipe("breast_cancer", classes=["benign", "malignant"]))
    assert bc.info.classes == ["benign", "malignant"]
    assert np.bincount(bc.splits.test.y).tolist() == [72, 42]  # benign 72, malignant 42


def test_numbers_match_numeric_class_names():
    data = ArrayData(np.zeros((4, 1)), np.array([0, 1, 2, 0]), "classification", ["1", "3.0", "7"])
    assert resolve_classes([3, "7"], data) == [1, 2]
    with pytest.raises(RecipeError, match=r"0 is not a label.*its labels are 1, 3.0, 7$"):
        resolve_classes([0, 7], data)  # numeric names: a number is never an index


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"classes": [5, 12]},
            r"12 is not a label of dataset 'digits'; its labels are 0, 1, .*, 9",
        ),
        ({"classes": [5, "5"]}, r"class '5' is listed twice \(\[5, '5'\]\); list each class once"),
        ({"classes": [3]}, r"keeps 1 class; a classifier needs at least 2"),
        ({"classes": []}, r"keeps 0 class"),
    ],
)
def test_bad_class_lists_are_recipe_errors(data, match):
    with pytest.raises(RecipeError, match=match):
        prepare(_recipe(**data))


def test_unknown_class_name_suggests_the_closest():
    with pytest.raises(
        RecipeError,
        match=r"'benin' is not a label of dataset 'breast_cancer'; did you mean 'benign'\? "
        r"its labels are malignant, benign \(or their indices 0 to 1\)",
    ):
        prepare(_recipe("breast_cancer", classes=["benin", "malignant"]))


def test_too_few_training_rows_names_the_class_its_count_and_the_fix():
    data = _indexed("digits")
    counts = np.bincount(setup.raw_splits(_recipe(), data).train.y)
    least = int(counts.min())
    with pytest.raises(DataError) as err:
        setup.raw_splits(_recipe(train_per_class=least + 1), data)
    msg = str(err.value)
    assert f"class '{int(counts.argmin())}' has only {least}" in msg
    assert f"set data.train_per_class to at most {least}" in msg


@pytest.mark.parametrize("key", [{"classes": [1, 2]}, {"train_per_class": 5}])
def test_regression_datasets_refuse_both_keys(key):
    name = next(iter(key))
    with pytest.raises(RecipeError, match=rf"data.{name}: dataset 'diabetes' is regression"):
        prepare(_recipe("diabetes", **key))


def test_recipe_hash_of_a_recipe_without_the_keys_is_unchanged():
    plain = {"data": {"dataset": "digits"}, "model": {"name": "mlp"}}
    recipe = trainlab.load_recipe(plain)
    assert "classes" not in recipe.to_dict()["data"]
    assert "train_per_class" not in recipe.to_dict()["data"]
    nulls = {"data": {"dataset": "digits", "classes": None, "train_per_class": None}}
    assert recipe_hash(trainlab.load_recipe({**plain, **nulls})) == recipe_hash(recipe)
    assert recipe_hash(_recipe(classes=[0, 1])) != recipe_hash(_recipe())
    assert recipe_hash(_recipe(train_per_class=3)) != recipe_hash(_recipe())


def test_mnist_five_classes_ten_labels_each_trains_and_predicts_original_labels(tmp_path):
    recipe = {
        "name": "mnist-5to9",
        "data": {"dataset": "mnist", "classes": [5, 6, 7, 8, 9], "train_per_class": 10},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 2, "batch_size": 16, "lr": 0.003, "optimizer": "adam"},
    }
    run = trainlab.train(recipe, out=tmp_path / "mnist")
    assert run.status == "completed"
    predictor = trainlab.load(run.run_dir)
    assert predictor.info.classes == ["5", "6", "7", "8", "9"]
    assert predictor.info.output_dim == 5
    p = prepare(run.recipe)
    assert np.bincount(p.splits.train.y).tolist() == [10] * 5
    images = DATASETS.get("mnist").builder(None)
    sevens = images.X[images.y == 7][:50]
    labels = predictor.labels(predictor.predict(sevens))
    assert set(labels) <= {"5", "6", "7", "8", "9"}
    assert labels.count("7") > 25  # 50 labels are enough to tell a 7 (37 of 50 here)
    assert predictor.evaluate("test")["test_accuracy"] > 0.4  # chance is 0.2 (0.58 here)
