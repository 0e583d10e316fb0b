"""A recipe naming only its data gets its dataset's preset; what it does say wins."""

from __future__ import annotations

import pytest

from trainlab.config import load_recipe
from trainlab.config.presets import TABULAR, batch_size_for
from trainlab.errors import RecipeError

CENSUS = "examples/data/census_sample.csv"


def _data_only(**extra):
    return {"data": {"dataset": {"name": "csv", "path": CENSUS, "target": "income"}}, **extra}


def test_a_table_recipe_without_model_gets_the_tabular_preset():
    recipe = load_recipe(_data_only())
    assert recipe.model.name == "mlp" and recipe.model.params.hidden == [256, 256, 256]
    assert recipe.train.optimizer.name == "adamw" and recipe.train.schedule.name == "plateau"
    assert recipe.train.batch_size == batch_size_for(2001) == 64  # 2,000 rows + header
    assert [t.name for t in recipe.techniques] == ["early_stopping"]
    assert recipe.description.startswith("tabular preset")


def test_what_the_recipe_says_wins_key_by_key():
    recipe = load_recipe(_data_only(train={"epochs": 7}, techniques=[]))
    assert recipe.train.epochs == 7 and recipe.train.lr == TABULAR["train"]["lr"]
    assert recipe.techniques == []
    named = load_recipe(_data_only(model="wide_deep"))
    assert named.model.name == "wide_deep" and named.train.epochs == 10  # no preset at all


def test_overrides_by_path_merge_into_the_preset():
    recipe = load_recipe(
        _data_only(), overrides=["model.dropout=0.3", "techniques.0.patience=30"]
    )
    assert recipe.model.name == "mlp" and recipe.model.params.dropout == 0.3
    assert recipe.model.params.hidden == [256, 256, 256]
    assert recipe.techniques[0].params.patience == 30


def test_a_dataset_without_preset_asks_for_a_model():
    with pytest.raises(RecipeError, match="no model named, and dataset 'mnist' has no default"):
        load_recipe({"data": {"dataset": "mnist"}})


@pytest.mark.parametrize(
    ("rows", "batch"), [(100, 32), (891, 32), (1599, 64), (4177, 128), (20640, 256), (10**6, 256)]
)
def test_batch_size_gives_small_tables_enough_steps_per_epoch(rows, batch):
    assert batch_size_for(rows) == batch
    assert batch == 256 or int(0.7 * rows) // batch >= 16 or batch == 32
