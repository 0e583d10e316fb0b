"""Recipe validation, safe loading and dotted overrides."""

from __future__ import annotations

import pytest

from trainlab import RecipeError, load_recipe
from trainlab.config import Recipe, apply_overrides, recipe_hash


def test_defaults_are_filled_in(digits_recipe):
    recipe = load_recipe(digits_recipe)
    assert recipe.train.optimizer.name == "adam"
    assert recipe.train.schedule.name == "constant"
    assert recipe.data.test_size == 0.2 and recipe.data.val_size == 0.1
    assert recipe.model.params.hidden == [32]


def test_unknown_recipe_key_names_the_path_and_suggests(digits_recipe):
    digits_recipe["train"]["epochz"] = 3
    with pytest.raises(RecipeError) as exc:
        load_recipe(digits_recipe)
    msg = str(exc.value)
    assert "train" in msg and "epochz" in msg and "did you mean 'epochs'" in msg


def test_unknown_optimizer_suggests_the_closest_name(digits_recipe):
    digits_recipe["train"]["optimizer"] = "adma"
    with pytest.raises(RecipeError) as exc:
        load_recipe(digits_recipe)
    msg = str(exc.value)
    assert "train.optimizer" in msg and "'adma'" in msg and "did you mean 'adam'" in msg


def test_negative_learning_rate_names_key_value_and_bound(digits_recipe):
    with pytest.raises(RecipeError) as exc:
        load_recipe(digits_recipe, ["train.lr=-0.1"])
    msg = str(exc.value)
    assert "train.lr" in msg and "-0.1" in msg and "greater than 0" in msg


def test_unknown_model_parameter_is_rejected(digits_recipe):
    digits_recipe["model"]["hiden"] = [3]
    with pytest.raises(RecipeError, match="did you mean 'hidden'"):
        load_recipe(digits_recipe)


def test_missing_recipe_file_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_yaml_with_python_tag_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(
        "data: !!python/object/apply:os.system ['touch " + str(marker) + "']\nmodel: mlp\n"
    )
    with pytest.raises(RecipeError, match="python tags are not allowed"):
        load_recipe(path)
    assert not marker.exists()


def test_overrides_parse_yaml_values_and_expand_bare_names(digits_recipe):
    recipe = load_recipe(
        digits_recipe,
        [
            "train.lr=0.05",
            "model.hidden=[256,128]",
            "train.optimizer=sgd",
            "train.optimizer.momentum=0.9",
        ],
    )
    assert recipe.train.lr == 0.05
    assert recipe.model.params.hidden == [256, 128]
    assert recipe.train.optimizer.name == "sgd"
    assert recipe.train.optimizer.params.momentum == 0.9


def test_override_into_a_value_is_an_error(digits_recipe):
    with pytest.raises(RecipeError, match="is a value, not a section"):
        apply_overrides(digits_recipe, ["train.lr.x=1"])


def test_recipe_built_in_python_round_trips_through_yaml(tmp_path, digits_recipe):
    recipe = Recipe(**digits_recipe)
    path = tmp_path / "r.yaml"
    import yaml

    path.write_text(yaml.safe_dump(recipe.to_dict()))
    again = load_recipe(path)
    assert recipe_hash(again) == recipe_hash(recipe)
    assert recipe_hash(load_recipe(digits_recipe, ["train.seed=1"])) != recipe_hash(recipe)


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".hidden", "x" * 200])
def test_unsafe_recipe_names_are_refused(digits_recipe, bad):
    digits_recipe["name"] = bad
    with pytest.raises(RecipeError, match="not allowed"):
        load_recipe(digits_recipe)


def test_override_inside_a_bare_init_preset_keeps_the_preset():
    from tests.conftest import EXAMPLES

    recipe = load_recipe(EXAMPLES / "mnist_cnn_bn.yaml", ["model.init.bn_warm_start=false"])
    init = recipe.model.params.init
    assert init.preset == "keras" and init.scheme == "xavier_uniform"
    assert init.bn_momentum == 0.01 and init.bn_warm_start is False


def test_data_paths_resolve_next_to_the_recipe_when_not_found_from_here(tmp_path, monkeypatch):
    import trainlab

    project = tmp_path / "project"
    project.mkdir()
    rows = ["x1,x2,y"] + [f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(60)]
    (project / "data.csv").write_text("\n".join(rows) + "\n")
    (project / "recipe.yaml").write_text(
        "data:\n  dataset: {name: csv, path: data.csv, target: y}\n"
        "model: {name: mlp, hidden: [4]}\ntrain: {epochs: 1}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(project / "recipe.yaml")
    assert recipe.data.dataset.params.path == str((project / "data.csv").resolve())
    run = trainlab.train(project / "recipe.yaml", out=tmp_path / "run")
    assert run.status == "completed"
    # a path that exists from the current directory is kept as written
    (elsewhere / "data.csv").write_text((project / "data.csv").read_text())
    assert load_recipe(project / "recipe.yaml").data.dataset.params.path == "data.csv"
    # an override is read from the current directory, as typed
    moved = load_recipe(project / "recipe.yaml", ["data.dataset.path=other.csv"])
    assert moved.data.dataset.params.path == "other.csv"
