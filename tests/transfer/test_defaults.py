"""Transfer recipes' defaults: no weight decay on norms and biases unless asked."""

from __future__ import annotations

import trainlab

BASE = {
    "data": {"dataset": "digits"},
    "model": {"name": "mlp", "hidden": [16], "init_from": {"run": "runs/source"}},
    "train": {"weight_decay": 0.01},
}


def test_a_transfer_recipe_keeps_norms_and_biases_free_of_weight_decay():
    recipe = trainlab.load_recipe(BASE)
    assert recipe.train.decay_norm_and_bias is False
    # resolved into the recipe, so the saved recipe.yaml (and a resume) says the same
    assert recipe.to_dict()["train"]["decay_norm_and_bias"] is False


def test_the_recipe_can_still_ask_for_decay_everywhere():
    asked = {**BASE, "train": {"weight_decay": 0.01, "decay_norm_and_bias": True}}
    assert trainlab.load_recipe(asked).train.decay_norm_and_bias is True
    scratch = {**BASE, "model": {"name": "mlp", "hidden": [16]}}
    assert trainlab.load_recipe(scratch).train.decay_norm_and_bias is True
