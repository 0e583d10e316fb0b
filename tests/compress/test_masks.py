"""Masks (which weights are zeroed), KeepMasks (kept zero while training), sparse layers."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from trainlab.compress import sparse
from trainlab.compress.masks import (
    KeepMasks,
    apply_masks,
    magnitude_masks,
    output_layer,
    prunable_weights,
    sparsity_report,
    threshold_masks,
)
from trainlab.compress.sparse import SparseLinear, measure_linear, sparsify
from trainlab.engine.checkpoint import restore_training_state, training_state
from trainlab.engine.loop import Engine
from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.errors import RecipeError, RunError


def mlp(scale_second: float = 1.0) -> nn.Sequential:
    """Three Linear layers (the last is the output layer); the second's weights scaled."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 5)
    )
    with torch.no_grad():
        model[2].weight.mul_(scale_second)
    return model


def zeros(t: torch.Tensor) -> int:
    return int((t == 0).sum())


def test_global_scope_zeroes_the_requested_share_of_the_smallest_weights_across_layers():
    model = mlp(scale_second=10.0)
    masks = magnitude_masks(model, 0.5, scope="global")
    assert set(masks) == {"0.weight", "2.weight"}
    total = 20 * 30 + 30 * 40
    assert abs(sum(zeros(m) for m in masks.values()) - 0.5 * total) <= 1
    pruned = torch.cat([model.get_parameter(n).abs()[m == 0] for n, m in masks.items()])
    kept = torch.cat([model.get_parameter(n).abs()[m == 1] for n, m in masks.items()])
    assert pruned.max() <= kept.min()
    # the layer of ten-times larger weights gives up less than half of them, the other more
    assert zeros(masks["2.weight"]) / masks["2.weight"].numel() < 0.5
    assert zeros(masks["0.weight"]) / masks["0.weight"].numel() > 0.5


def test_layer_scope_prunes_every_layer_to_the_sparsity_by_its_own_ranking():
    model = mlp(scale_second=10.0)
    masks = magnitude_masks(model, 0.7, scope="layer")
    for name, mask in masks.items():
        assert abs(zeros(mask) - 0.7 * mask.numel()) <= 1
        w = model.get_parameter(name).abs()
        assert w[mask == 0].max() <= w[mask == 1].min()


def test_the_output_layer_biases_and_norms_are_never_pruned_by_default():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)
    )
    assert output_layer(model) == "4.weight"
    assert set(magnitude_masks(model, 0.5)) == {"0.weight"}
    assert set(magnitude_masks(model, 0.5, exclude_last=False)) == {"0.weight", "4.weight"}
    apply_masks(model, magnitude_masks(model, 0.5))
    assert zeros(model[4].weight) == 0 and zeros(model[0].bias) == 0
    assert zeros(model[1].weight) == 0


def test_a_model_with_only_an_output_layer_has_nothing_to_prune():
    with pytest.raises(RecipeError, match="no Linear or Conv layer to prune besides its output"):
        magnitude_masks(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), 0.5)


def test_pruning_a_pruned_model_again_keeps_its_zeros():
    model = mlp()
    first = magnitude_masks(model, 0.5)
    apply_masks(model, first)
    second = magnitude_masks(model, 0.8)
    for name in first:
        assert bool(((first[name] == 0) & (second[name] == 1)).sum() == 0)


def test_threshold_zeroes_exactly_the_weights_below_it():
    model = mlp()
    t = float(model[0].weight.detach().abs().median())
    masks = threshold_masks(model, t)
    for name, mask in masks.items():
        w = model.get_parameter(name).detach()
        assert torch.equal(mask == 0, w.abs() < t)
    with pytest.raises(RecipeError, match="positive"):
        threshold_masks(model, 0.0)


def test_apply_masks_zeroes_only_the_masked_weights():
    model = mlp()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = magnitude_masks(model, 0.6)
    apply_masks(model, masks)
    for name, p in model.named_parameters():
        if name in masks:
            assert torch.equal(p.detach(), before[name] * masks[name])
        else:
            assert torch.equal(p.detach(), before[name])


def test_masks_from_another_model_are_refused():
    masks = magnitude_masks(mlp(), 0.5)
    other = nn.Sequential(nn.Linear(20, 31), nn.ReLU(), nn.Linear(31, 5))
    with pytest.raises(RunError, match="shape"):
        apply_masks(other, {"0.weight": masks["0.weight"]})
    with pytest.raises(RunError, match="does not have"):
        apply_masks(other, {"9.weight": masks["0.weight"]})


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1])
def test_a_sparsity_outside_zero_to_one_is_a_recipe_error(bad):
    with pytest.raises(RecipeError, match=r"in \[0, 1\)"):
        magnitude_masks(mlp(), bad)


def test_sparsity_report_counts_zeros_per_layer_overall_and_over_the_model():
    model = mlp()
    with torch.no_grad():
        model[0].weight[:3] = 0.0  # 3 rows of 20
        model[2].weight[:, :4] = 0.0  # 4 columns of 40 rows
        model[2].bias[:2] = 0.0
    report = sparsity_report(
        model, {n: torch.ones_like(p) for n, p in prunable_weights(model).items()}
    )
    assert report["layers"]["0.weight"] == {"shape": [30, 20], "total": 600, "zeros": 60,
                                            "sparsity": 0.1}  # fmt: skip
    assert report["layers"]["2.weight"]["zeros"] == 160
    assert report["overall"] == {"total": 1800, "zeros": 220, "sparsity": 220 / 1800}
    n_params = sum(p.numel() for p in model.parameters())
    assert report["model"]["total"] == n_params and report["model"]["zeros"] == 222
    assert set(sparsity_report(model)["layers"]) == {"0.weight", "2.weight", "4.weight"}


def _fit(model: nn.Module, techniques: list, epochs: int = 1) -> State:
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 20, generator=g), torch.randint(0, 5, (16,), generator=g))
               for _ in range(20)]  # fmt: skip
    state = State(model, torch.optim.Adam(model.parameters(), lr=0.01), nn.CrossEntropyLoss(),
                  torch.device("cpu"), max_epochs=epochs)  # fmt: skip
    Engine(state, batches, None, None, techniques, "multiclass").fit()
    return state


def test_keep_masks_keeps_pruned_weights_zero_through_adam_steps():
    model = mlp()
    masks = magnitude_masks(model, 0.8)
    apply_masks(model, masks)
    start = model[0].weight.detach().clone()
    _fit(model, [KeepMasks(masks)])
    for name, mask in masks.items():
        w = model.get_parameter(name).detach()
        assert torch.all(w[mask == 0] == 0)
        assert torch.all(w[mask == 1] != 0)
    assert not torch.equal(model[0].weight.detach(), start)  # the kept weights did train
    unkept = mlp()
    apply_masks(unkept, masks)
    _fit(unkept, [])
    assert zeros(unkept[0].weight) < zeros(masks["0.weight"])  # Adam revives them otherwise


def test_keep_masks_runs_after_weight_changing_techniques_and_before_averaging():
    assert Slot.DEFAULT < KeepMasks.order < Slot.AVERAGE


def test_keep_masks_survive_a_checkpoint_round_trip():
    model = mlp()
    masks = magnitude_masks(model, 0.5)
    keep = KeepMasks(masks)
    state = _fit(model, [keep])
    buffer = io.BytesIO()
    torch.save(training_state(state, [keep]), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = KeepMasks()
    restore_training_state(state, [resumed], saved)
    assert resumed.masks.keys() == masks.keys()
    assert all(torch.equal(resumed.masks[n], masks[n]) for n in masks)
    fresh = mlp()  # a resumed fit applies the loaded masks to the weights it trains
    _fit(fresh, [resumed])
    assert all(zeros(fresh.get_parameter(n)) >= zeros(m) for n, m in masks.items())


def test_sparse_linear_computes_what_the_dense_layer_computes():
    torch.manual_seed(0)
    dense = nn.Linear(64, 32)
    apply_masks(dense, {"weight": (torch.rand(32, 64) > 0.9).float()})
    layer = SparseLinear(dense)
    assert layer.weight.layout == torch.sparse_csr
    for x in (torch.randn(256, 64), torch.randn(1, 64), torch.randn(2, 3, 64)):
        assert torch.allclose(layer(x), dense(x), atol=1e-5, rtol=1e-5)
    no_bias = nn.Linear(64, 8, bias=False)
    x = torch.randn(5, 64)
    assert torch.allclose(SparseLinear(no_bias)(x), no_bias(x), atol=1e-5, rtol=1e-5)


def test_measure_linear_times_both_products():
    layer = nn.Linear(128, 64)
    apply_masks(layer, {"weight": (torch.rand(64, 128) > 0.9).float()})
    row = measure_linear(layer, batch=32, repeats=3)
    assert row["shape"] == [64, 128] and row["batch"] == 32
    assert row["dense_ms"] > 0 and row["sparse_ms"] > 0
    assert row["faster"] == (row["sparse_ms"] < row["dense_ms"])
    assert 0.85 < row["sparsity"] < 0.95


def test_sparsify_swaps_only_the_layers_measured_faster(monkeypatch):
    model = mlp()
    masks = magnitude_masks(model, 0.9)
    apply_masks(model, masks)
    x = torch.randn(7, 20)
    expected = model(x)
    speedups = {20: 2.0, 30: 1.05}  # by in_features: fake timings decide the swap

    def fake(linear, batch=256, repeats=7):
        s = speedups[linear.in_features]
        return {"dense_ms": s, "sparse_ms": 1.0, "speedup": s, "faster": s > 1}

    monkeypatch.setattr(sparse, "measure_linear", fake)
    model, report = sparsify(model, min_speedup=1.1, masks=masks)
    assert isinstance(model[0], SparseLinear) and isinstance(model[2], nn.Linear)
    assert isinstance(model[4], nn.Linear)  # not pruned, not measured
    assert report["0.weight"]["swapped"] and not report["2.weight"]["swapped"]
    assert torch.allclose(model(x), expected, atol=1e-5)
