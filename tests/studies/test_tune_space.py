"""Search spaces: parsing, validation against the recipe schema, conditions, grid points."""

from __future__ import annotations

import optuna
import pytest

import trainlab
from trainlab.studies.space import load_space, parse_space

from ..conftest import EXAMPLES

SPACE = {
    "train.lr": {"low": 1e-3, "high": 0.3, "log": True, "grid": [0.003, 0.03]},
    "model.hidden": [[16], [64]],
    "train.optimizer.name": ["adam", "sgd"],
    "train.optimizer.momentum": {
        "low": 0.0,
        "high": 0.95,
        "grid": [0.0, 0.9],
        "when": {"train.optimizer.name": "sgd"},
    },
    "train.batch_size": {"low": 16, "high": 64, "step": 16},
}


def test_kinds_are_inferred_and_conditions_come_after_their_key():
    space = parse_space(
        {
            "a.momentum": SPACE["train.optimizer.momentum"] | {"when": {"a.opt": "sgd"}},
            "a.opt": ["adam", "sgd"],
        }
    )
    assert space.keys == ["a.opt", "a.momentum"]
    full = parse_space(SPACE)
    kinds = {p.key: p.kind for p in full}
    assert kinds == {
        "train.lr": "float",
        "model.hidden": "categorical",
        "train.optimizer.name": "categorical",
        "train.optimizer.momentum": "float",
        "train.batch_size": "int",
    }


def test_grid_points_count_conditional_keys_only_where_active():
    space = parse_space(SPACE)
    points = space.grid_points()
    # lr 2 x hidden 2 x (adam + sgd x 2 momenta) x batch 4 = 48, not the 64 of a full product
    assert len(points) == 2 * 2 * 3 * 4
    assert all(
        ("train.optimizer.momentum" in p) == (p["train.optimizer.name"] == "sgd") for p in points
    )
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)


def test_suggest_sets_a_conditional_key_only_when_its_condition_holds():
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"adam": 0, "sgd": 0}
    for _ in range(20):
        trial = study.ask()
        values = space.suggest(trial)
        seen[values["train.optimizer.name"]] += 1
        assert ("train.optimizer.momentum" in values) == (values["train.optimizer.name"] == "sgd")
        assert values["model.hidden"] in ([16], [64])  # decoded back to lists
        assert values["train.batch_size"] in (16, 32, 48, 64)
        study.tell(trial, 0.0)
    assert seen["adam"] and seen["sgd"]


def test_a_valid_space_validates_against_the_recipe(digits_recipe):
    parse_space(SPACE).validate(trainlab.load_recipe(digits_recipe))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"train.lrr": {"low": 0.001, "high": 0.1}},
            r"'train.lrr'.*unknown key 'lrr'; did you mean 'lr'",
        ),
        ({"train.lr": {"low": 0.1, "high": 0.01}}, r"'train.lr' has an empty range"),
        ({"train.lr": {"low": 0.0, "high": 0.1, "log": True}}, r"log-scaled; low must be > 0"),
        ({"train.lr": {"low": "small", "high": 0.1}}, r"'train.lr'.low must be a number"),
        ({"train.epochs": {"low": 1.5, "high": 3.0}}, r"'train.epochs' = 1.5 does not fit"),
        ({"train.batch_size": {"choices": []}}, r"choices must be a non-empty list"),
        ({"model.dropout": {"low": 0.0, "high": 1.5}}, r"'model.dropout' = 1.5 does not fit"),
        (
            {"train.optimizer.momentum": {"low": 0.1, "high": 0.9, "when": {"x.y": "sgd"}}},
            r"'x.y' is not in the space",
        ),
        ({"train.lr": {"low": 0.001, "high": 0.1, "stepp": 2}}, r"unknown field 'stepp'"),
        ({}, r"non-empty mapping"),
    ],
)
def test_bad_spaces_are_refused_before_any_trial_with_the_key_named(digits_recipe, space, message):
    recipe = trainlab.load_recipe(digits_recipe)
    with pytest.raises(trainlab.RecipeError, match=message):
        parse_space(space).validate(recipe)


def test_grid_needs_finite_values_for_float_ranges():
    space = parse_space({"train.lr": {"low": 0.001, "high": 0.1}})
    with pytest.raises(trainlab.RecipeError, match=r"add `grid: \[v1, v2, ...\]`"):
        space.grid_points()


def test_example_space_fits_the_example_recipe():
    space = load_space(EXAMPLES / "mnist_mlp_space.yaml")
    space.validate(trainlab.load_recipe(EXAMPLES / "mnist_mlp_dropout.yaml"))
    assert set(space.keys) == {
        "train.lr",
        "train.batch_size",
        "model.hidden",
        "model.dropout",
        "train.weight_decay",
    }
    assert len(space.grid_points()) == 48


def test_missing_space_file_is_a_clear_error(tmp_path):
    with pytest.raises(trainlab.RecipeError, match="search space file .* not found"):
        load_space(tmp_path / "nope.yaml")
