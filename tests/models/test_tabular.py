"""Wide & Deep: the wide part is exactly a linear model; the whole model learns real Adult."""

from __future__ import annotations

import pytest
import torch

import trainlab
from trainlab.errors import RecipeError
from trainlab.models import MODELS
from trainlab.tasks import TaskInfo

from ..conftest import EXAMPLES

CARDS = [4, 6, 3]
TABLE = TaskInfo(
    "multiclass",
    2,
    (5 + len(CARDS),),
    ["<=50K", ">50K"],
    features={
        "kind": "tabular",
        "numeric": 5,
        "cardinalities": CARDS,
        "categorical_names": ["workclass", "education", "sex"],
    },
)


def _build(**params) -> torch.nn.Module:
    torch.manual_seed(0)
    entry = MODELS.get("wide_deep")
    return entry.builder(entry.params(**params), TABLE)


def _batch(n: int = 32) -> torch.Tensor:
    torch.manual_seed(1)
    cats = torch.stack([torch.randint(0, c, (n,)) for c in CARDS], dim=1).float()
    return torch.cat([torch.randn(n, 5), cats], dim=1)


def test_wide_part_is_exactly_a_linear_model_over_its_one_hot_inputs():
    model = _build(crosses=[["workclass", "education"]])
    with torch.no_grad():  # give every wide weight a distinct value
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    x = _batch()
    numeric, idx = x[:, :5], x[:, 5:].long()
    one_hots = [torch.nn.functional.one_hot(idx[:, k], c) for k, c in enumerate(CARDS)]
    cross = idx[:, 0] * CARDS[1] + idx[:, 1]
    one_hots.append(torch.nn.functional.one_hot(cross, CARDS[0] * CARDS[1]))
    design = torch.cat([numeric, *[h.float() for h in one_hots]], dim=1)
    weight = torch.cat(
        [
            model.wide_linear.weight,
            *[e.weight.T for e in model.wide_embeddings],
            model.cross_embeddings[0].weight.T,
        ],
        dim=1,
    )
    bias = model.wide_linear.bias + model.wide_bias
    assert design.shape[1] == 5 + sum(CARDS) + 24
    assert torch.allclose(model.wide(x), design @ weight.T + bias, atol=1e-5)
    assert torch.allclose(model(x), model.wide(x) + model.deep(x))


def test_wide_starts_at_zero_and_parts_can_be_switched_off():
    x = _batch()
    model = _build()
    assert torch.allclose(model.wide(x), model.wide_linear(x[:, :5]))  # embeddings start at 0
    deep_only = _build(wide=False)
    assert torch.allclose(deep_only(x), deep_only.deep(x))
    assert _build(deep=False)(x).shape == (32, 2)


def test_large_crosses_are_hashed_and_unknown_indices_map_to_zero():
    model = _build(crosses=[["education", "sex"]], hash_buckets=7)
    assert model.cross_embeddings[0].num_embeddings == 7
    x = _batch()
    assert int(max(c.max() for c in model.cross_indices(model.split(x)[1]))) < 7
    x_bad = x.clone()
    x_bad[:, 5] = 99  # a category index the table never had
    x_zero = x.clone()
    x_zero[:, 5] = 0
    assert torch.allclose(model(x_bad), model(x_zero))


def test_bad_cross_and_non_tabular_data_are_clear_errors(digits_recipe):
    with pytest.raises(ValueError, match="unknown categorical column 'age'"):
        _build(crosses=[["age", "sex"]])
    entry = MODELS.get("wide_deep")
    with pytest.raises(ValueError, match="index-encoded categorical"):
        entry.builder(entry.params(), TaskInfo("multiclass", 10, (1, 28, 28), None))
    digits_recipe["model"] = {"name": "wide_deep", "crosses": [["a", "b"]]}
    with pytest.raises(RecipeError, match="model: crosses: unknown categorical column 'a'"):
        trainlab.train(digits_recipe)


def test_wide_deep_learns_adult_in_one_epoch(tmp_path):
    run = trainlab.train(
        EXAMPLES / "adult_wide_deep.yaml", {"train.epochs": 1}, out=tmp_path / "adult"
    )
    assert run.metrics["test_accuracy"] >= 0.83  # majority class: 0.764
    assert run.metrics["test_roc_auc"] >= 0.87


@pytest.mark.slow
def test_adult_wide_deep_example_beats_logistic_regression(tmp_path):
    run = trainlab.train(EXAMPLES / "adult_wide_deep.yaml", out=tmp_path / "adult")
    # logistic regression 0.851; seeds 0-3 give 0.8567-0.859 (0.855 was 28 rows away)
    assert run.metrics["test_accuracy"] >= 0.852
