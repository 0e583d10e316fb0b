"""A pruned model saved as its shapes is rebuilt exactly from the recipe (structure.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import trainlab
from trainlab import setup
from trainlab.errors import RecipeError
from trainlab.models.structure import apply_shapes, changed_shapes
from trainlab.prepare import prepare


def _narrowed_cnn() -> nn.Sequential:
    """A conv → BN → ReLU → conv → flatten → linear net, then its first conv cut to 3."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1, groups=1), nn.Flatten(), nn.Linear(4 * 6 * 6, 5),
    )  # fmt: skip
    small = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 6 * 6, 5),
    )  # fmt: skip
    return net, small


def test_changed_shapes_lists_only_what_differs():
    net, small = _narrowed_cnn()
    shapes = changed_shapes(small, net)
    assert shapes == {
        "0.weight": [3, 1, 3, 3], "0.bias": [3], "1.weight": [3], "1.bias": [3],
        "1.running_mean": [3], "1.running_var": [3], "3.weight": [4, 3, 3, 3],
    }  # fmt: skip


def test_apply_shapes_rebuilds_a_model_the_weights_fit():
    net, small = _narrowed_cnn()
    small.eval()
    replaced = apply_shapes(net, changed_shapes(small, net))
    assert replaced == ["0", "1", "3"]
    net.load_state_dict(small.state_dict())
    net.eval()
    x = torch.randn(2, 1, 6, 6)
    assert torch.equal(net(x), small(x))


def test_a_depthwise_conv_stays_depthwise():
    net = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8))
    apply_shapes(net, {"0.weight": [5, 1, 3, 3], "0.bias": [5]})
    assert (net[0].in_channels, net[0].out_channels, net[0].groups) == (5, 5, 5)


def test_unknown_names_and_kinds_are_refused():
    with pytest.raises(ValueError, match="does not have"):
        apply_shapes(nn.Sequential(nn.Linear(3, 2)), {"9.weight": [2, 2]})
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        apply_shapes(nn.Sequential(nn.LSTM(3, 4)), {"0.weight_ih_l0": [8, 3]})


def test_a_recipe_with_compression_shapes_builds_the_pruned_model():
    """The compressed run's recipe form: `compression.shapes` narrows the built model,
    re-initialised as the recipe initialises (Glorot for init: keras: zero biases)."""
    shapes = {"1.weight": [48, 784], "1.bias": [48], "4.weight": [10, 48]}
    recipe = trainlab.load_recipe("examples/mnist_mlp_dropout.yaml",
                                  {"compression": {"shapes": shapes}})  # fmt: skip
    prepared = prepare(recipe, check_finite=False)
    model = setup.build_model(recipe, prepared.info)
    assert model[1].weight.shape == (48, 784) and model[4].weight.shape == (10, 48)
    assert torch.count_nonzero(model[1].bias) == 0  # keras init: zero biases
    bound = (6 / (784 + 48)) ** 0.5  # Glorot-uniform
    assert model[1].weight.abs().max() <= bound


def test_bad_compression_shapes_are_a_recipe_error():
    recipe = trainlab.load_recipe("examples/mnist_mlp_dropout.yaml",
                                  {"compression": {"shapes": {"7.weight": [1, 1]}}})  # fmt: skip
    prepared = prepare(recipe, check_finite=False)
    with pytest.raises(RecipeError, match="does not have"):
        setup.build_model(recipe, prepared.info)


def test_recipes_without_compression_hash_as_before():
    recipe = trainlab.load_recipe("examples/mnist_mlp_dropout.yaml")
    assert "compression" not in recipe.to_dict()
