"""The `features` dataset: a recipe trains on another run's layer outputs."""

from __future__ import annotations

import numpy as np
import pytest

import trainlab
from trainlab.catalog import DATASETS
from trainlab.errors import RecipeError
from trainlab.features_data import FeaturesParams, load_features

SOURCE = {
    "name": "source",
    "data": {"dataset": "digits", "preprocessing": {"scale": "minmax"}},
    "model": {"name": "mlp", "hidden": [64, 32]},
    "train": {"epochs": 3, "threads": 1},
}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return trainlab.train(SOURCE, out=tmp_path_factory.mktemp("features") / "source")


def _recipe(run, **dataset):
    return {
        "name": "on_features",
        "data": {"dataset": {"name": "features", "run": str(run), "layer": "-2", **dataset},
                 "preprocessing": {"scale": "standard"}},
        "model": {"name": "mlp", "hidden": []},
        "train": {"epochs": 3, "threads": 1},
    }  # fmt: skip


def test_the_rows_are_the_source_models_layer_outputs(source):
    data = load_features(FeaturesParams(run=str(source.run_dir), layer="-2"))
    raw = DATASETS.get("digits").builder(DATASETS.get("digits").params())
    assert data.X.shape == (len(raw.X), 32)  # layer -2: the 32-wide hidden activation
    expected = trainlab.load(source.run_dir).features(raw.X[:50], layer="-2")
    np.testing.assert_allclose(data.X[:50], expected, rtol=1e-5, atol=1e-6)
    assert (data.y == raw.y).all() and data.classes == raw.classes


def test_a_recipe_trains_on_them_and_learns(source, tmp_path):
    run = trainlab.train(_recipe(source.run_dir), out=tmp_path / "r")
    assert tuple(trainlab.load(run.run_dir).info.input_shape) == (32,)
    assert run.metrics["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    kept = trainlab.train({**_recipe(source.run_dir), "data": {
        **_recipe(source.run_dir)["data"], "classes": [5, 6, 7, 8, 9]}}, out=tmp_path / "k")
    assert kept.metrics["test_accuracy"] > 0.5
    assert trainlab.load(kept.run_dir).info.classes == ["5", "6", "7", "8", "9"]


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"run": "no/such/run"}, "not a trainlab run directory"),
        ({"layer": "hiden"}, "unknown layer"),
        ({"of": {"name": "features", "run": "x", "layer": "-1"}}, "features of features"),
        ({"of": "mnsit"}, "mnist"),
    ],
)
def test_bad_sources_are_refused_by_name(source, tmp_path, dataset, message):
    recipe = _recipe(source.run_dir)
    recipe["data"]["dataset"].update(dataset)
    before = sorted(p.name for p in source.run_dir.iterdir())
    with pytest.raises(RecipeError, match=message):
        trainlab.train(recipe, out=tmp_path / "bad")
    assert sorted(p.name for p in source.run_dir.iterdir()) == before  # source untouched
