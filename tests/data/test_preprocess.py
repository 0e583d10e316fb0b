"""Preprocessing: equal to scikit-learn's pipeline, fitted on train only, saved as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainlab
from trainlab import setup
from trainlab.config import load_recipe
from trainlab.data import DATASETS
from trainlab.data.options import PreprocessingConfig
from trainlab.data.preprocess import Preprocessor
from trainlab.errors import DataError
from trainlab.prepare import prepare


@pytest.fixture(scope="module")
def adult():
    return DATASETS.get("adult").builder(None)


def _fit(data, rows=3000, **cfg):
    pre = Preprocessor(
        PreprocessingConfig(**cfg), data.feature_names, data.extras["column_kinds"]
    ).fit(data.X[:rows])
    return pre


@pytest.mark.parametrize(
    "cfg",
    [
        {"impute": "median", "scale": "standard", "add_indicator": True},
        {"impute": "mean", "scale": "minmax", "categorical_missing": "most_frequent"},
        {"impute": "constant", "fill_value": -1, "scale": "robust", "encode": "index"},
        {"scale": "standard", "pca": 0.9},
        {"encode": "auto", "onehot_max": 5, "scale": "standard"},  # rare values → <other>
        {"encode": "onehot", "scale": "standard"},
        {"impute": "median", "scale": "quantile"},
    ],
)
def test_numpy_transform_equals_the_fitted_sklearn_pipeline(adult, cfg):
    pre = _fit(adult, **cfg)
    from trainlab.data.preprocess import _as_sklearn_input

    p = pre.p
    rows = adult.X_test[:500]
    ours = pre.transform(rows)
    theirs = pre._sklearn.transform(_as_sklearn_input(rows, p["numeric"], p["categorical"]))
    if cfg.get("encode") == "index":
        theirs[:, -8:] += 1  # unknown −1 → reserved 0
    if cfg.get("pca"):
        from sklearn.decomposition import PCA

        dense = pre._sklearn.transform(
            _as_sklearn_input(adult.X[:3000], p["numeric"], p["categorical"])
        )
        theirs = PCA(0.9, svd_solver="full", random_state=0).fit(dense).transform(theirs)
        assert pre.output_dim == ours.shape[1] < 30  # of ~100 one-hot + numeric columns
        assert 0.9 <= p["pca_explained"] < 0.93
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    if cfg.get("onehot_max") == 5:
        widths = [len(v) + other for v, other in zip(p["categories"], p["other"], strict=True)]
        education = p["categorical"].index(pre.column_names.index("education"))
        assert max(widths) == 5 and p["other"][education]
        assert "education=<other>" in pre.output_names and pre.output_dim == ours.shape[1]
    # the saved state is plain JSON and rebuilds the same transform
    state = json.loads(json.dumps(pre.state_dict()))
    np.testing.assert_array_equal(Preprocessor.from_state_dict(state).transform(rows), ours)


def test_no_statistic_of_validation_or_test_leaks_into_training():
    recipe = load_recipe(
        {
            "data": {
                "dataset": "adult",
                "preprocessing": {"impute": "mean", "add_indicator": True},
            },
            "model": "mlp",
        }
    )
    data = setup.load_dataset(recipe)
    prepared = prepare(recipe, data=data)
    splits, pre = prepared.splits, prepared.preprocessor
    # Poison every non-training row: absurd numbers, new categories, missing values.
    poisoned = setup.load_dataset(recipe)
    age = poisoned.feature_names.index("age")
    train_rows = {tuple(map(str, r)) for r in _train_raw(recipe, poisoned)}
    X = poisoned.X.copy()
    for i in range(len(X)):
        if tuple(map(str, X[i])) not in train_rows:
            X[i, age] = 1e9 if i % 2 else np.nan
            X[i, 1] = "Poisoned-gov"
    poisoned.X = X
    poisoned.X_test = np.where(poisoned.X_test == poisoned.X_test, poisoned.X_test, None)
    poisoned.X_test[:, age] = -1e9
    prepared2 = prepare(recipe, data=poisoned)
    splits2, pre2 = prepared2.splits, prepared2.preprocessor
    assert pre2.state_dict()["params"] == pre.state_dict()["params"]
    np.testing.assert_array_equal(splits2.train.X, splits.train.X)
    assert "Poisoned-gov" not in pre2.p["categories"][0]
    # while the poison does reach the validation inputs, so the test would see a leak
    assert not np.array_equal(splits2.val.X, splits.val.X)
    # and the fitted mean is the training rows' own mean
    np.testing.assert_allclose(
        pre.p["fill"][0], np.nanmean(_train_raw(recipe, data)[:, age].astype(float)), rtol=1e-9
    )


def _train_raw(recipe, data):
    from trainlab.data.splits import canonical_split

    return canonical_split(data, recipe.data.test_size, recipe.data.val_size, 0).train.X


def test_missing_numbers_are_imputed_by_default_and_refused_without_imputer(tmp_path):
    path = tmp_path / "t.csv"
    rows = ["height,weight,y"] + [
        f"{150 + (7 * i) % 40},{'' if i == 3 else 50 + i},{i % 2}" for i in range(40)
    ]
    path.write_text("\n".join(rows) + "\n")
    recipe = {
        "data": {"dataset": {"name": "csv", "path": str(path), "target": "y"}, "split_seed": 1},
        "model": "mlp",
        "train": {"epochs": 1},
    }
    run = trainlab.train(recipe, out=tmp_path / "run")
    assert run.status == "completed"
    data = json.loads((run.run_dir / "data.json").read_text())
    assert "weight_missing" in data["feature_names"]
    (note,) = data["table"]["imputed"]
    assert note.startswith("weight: missing values filled with the training median")
    recipe["data"]["preprocessing"] = {"impute": "none"}
    with pytest.raises(DataError, match="column 'weight' has 1 missing values.*impute"):
        trainlab.train(recipe, out=tmp_path / "run2")


def test_index_encoding_layout_for_embeddings(adult):
    pre = _fit(adult, encode="index", scale="standard")
    out = pre.transform(adult.X_test[:200])
    f = pre.features()
    assert f["kind"] == "tabular" and f["numeric"] == 6
    assert f["categorical_names"] == [
        "workclass",
        "education",
        "marital-status",
        "occupation",
        "relationship",
        "race",
        "sex",
        "native-country",
    ]
    assert out.shape == (200, 6 + 8) and out.dtype == np.float32
    codes = out[:, 6:]
    assert (codes == codes.round()).all() and codes.min() >= 0
    assert (codes.max(0) < np.asarray(f["cardinalities"])).all()
    assert f["cardinalities"][6] == 3  # sex: reserved 0 + Female + Male
    # numeric block is standardized with training statistics
    train = pre.transform(adult.X[:3000])
    np.testing.assert_allclose(train[:, :6].mean(0), 0, atol=1e-5)
    # missing workclass ('?') maps to the reserved index 0
    missing = [i for i in range(200) if adult.X_test[i, 1] is None]
    assert missing and (out[missing, 6] == 0).all()


def test_text_vocabulary_is_fitted_on_training_text_only():
    pre = Preprocessor(PreprocessingConfig(text={"max_len": 5, "min_freq": 2, "max_size": 3})).fit(
        np.array(["The cat sat.", "the CAT ran", "a dog sat", "the end"], dtype=object)
    )
    assert pre.vocab.itos == ["<pad>", "<unk>", "the", "cat", "sat"]
    ids = pre.transform(np.array(["the zebra sat on the cat mat", ""], dtype=object))
    assert ids.dtype == np.int64 and ids.tolist() == [[2, 1, 4, 1, 2], [1, 0, 0, 0, 0]]
    assert pre.features() == {"kind": "text", "vocab_size": 5, "pad_index": 0, "max_len": 5}
    again = Preprocessor.from_state_dict(json.loads(json.dumps(pre.state_dict())))
    assert again.transform(np.array(["cat"], dtype=object)).tolist() == [[3, 0, 0, 0, 0]]


def test_rt_polarity_pipeline_contract():
    recipe = load_recipe(
        {
            "data": {
                "dataset": "rt_polarity",
                "preprocessing": {"text": {"max_len": 40, "min_freq": 2}},
            },
            "model": "text_cnn",
        }
    )
    prepared = prepare(recipe)
    splits, pre, info = prepared.splits, prepared.preprocessor, prepared.info
    assert splits.train.X.shape == (7676, 40) and splits.train.X.dtype == np.int64
    assert info.input_shape == (40,) and info.features["kind"] == "text"
    assert info.features["vocab_size"] == len(pre.vocab) and 8000 < len(pre.vocab) < 12000
    lengths = (splits.test.X != 0).sum(1)
    assert lengths.min() >= 1 and (splits.test.X[:, 0] != 0).all()  # right-padded
    xt, _ = prepared.tensors("train")
    assert str(xt.dtype) == "torch.int64"
