"""neurons / channels pruning: activation statistics, exact slicing, the iterative stop
rule, and real train → prune → fine-tune → score runs."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from trainlab.compress.context import CompressContext
from trainlab.compress.importance import (
    activation_stats,
    hidden_unit_scores,
    unit_chains,
    unit_scores,
)
from trainlab.compress.methods import METHODS, MethodOptions
from trainlab.compress.slicing import build_channels, build_neurons, keep_units, prune_iteratively
from trainlab.compress.source import load_source
from trainlab.errors import RecipeError
from trainlab.models.cnn import CNNParams, build_cnn
from trainlab.models.mlp import MLPParams, build_mlp
from trainlab.models.structure import apply_shapes, changed_shapes
from trainlab.models.vgg import VGGParams, build_vgg_small
from trainlab.tasks import TaskInfo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _info(shape: tuple[int, ...], out: int = 10) -> TaskInfo:
    return TaskInfo("multiclass", out, shape, None)


def _randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with non-trivial affine weights and running statistics, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen))
    return model.eval()


def _random_keeps(model: nn.Module, kind: str | None = None, seed: int = 0) -> dict:
    """A random half of the units of every (or every `kind`) chain."""
    gen = torch.Generator().manual_seed(seed)
    keeps = {}
    for c in unit_chains(model):
        if kind is None or c.kind == kind:
            m = model.get_submodule(c.producer)
            n = m.out_features if isinstance(m, nn.Linear) else m.out_channels
            keeps[c.producer] = torch.randperm(n, generator=gen)[: max(1, n // 2)].sort().values
    return keeps


def _masked(model: nn.Module, keeps: dict) -> nn.Module:
    """The unsliced model with the removed units' contributions zeroed: the columns of
    the next layer that read them (H·W per channel after a flatten)."""
    masked = copy.deepcopy(model)
    for c in unit_chains(masked):
        if c.producer not in keeps:
            continue
        producer, consumer = masked.get_submodule(c.producer), masked.get_submodule(c.consumer)
        n = producer.out_features if isinstance(producer, nn.Linear) else producer.out_channels
        removed = torch.ones(n, dtype=torch.bool)
        removed[keeps[c.producer]] = False
        with torch.no_grad():
            if isinstance(consumer, nn.Conv2d):
                consumer.weight[:, removed] = 0
            else:
                per_unit = consumer.in_features // n
                consumer.weight[:, removed.repeat_interleave(per_unit)] = 0
    return masked


def _slice_all(model: nn.Module, keeps: dict) -> nn.Module:
    sliced = copy.deepcopy(model)
    for c in unit_chains(sliced):
        if c.producer in keeps:
            keep_units(sliced, c, keeps[c.producer])
    return sliced


def test_apoz_and_mean_activation_of_a_hand_made_layer():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        net[0].bias.zero_()
    x = torch.tensor([[1.0, 2.0], [-1.0, 3.0], [2.0, -1.0], [-3.0, -4.0]])
    batches = [(x[:3], None), (x[3:], None)]  # sums accumulate across batches
    (chain,) = unit_chains(net)
    assert (chain.producer, chain.observe, chain.consumer, chain.rectified) == ("0", "1", "2", True)
    stats = activation_stats(net, {"0": "1"}, batches)["0"]
    # after ReLU: unit 0 [1, 0, 2, 0], unit 1 [2, 3, 0, 0], unit 2 [0, 0, 0, 7]
    assert torch.allclose(stats.mean, torch.tensor([0.75, 1.25, 1.75]))
    assert torch.allclose(stats.apoz, torch.tensor([0.5, 0.5, 0.75]))
    assert stats.count == 4
    apoz = unit_scores(stats, "apoz")
    assert torch.argsort(apoz, descending=True).tolist() == [1, 0, 2]  # tie broken by mean
    assert torch.argsort(unit_scores(stats, "mean"), descending=True).tolist() == [2, 1, 0]


def test_conv_channel_statistics_cover_every_pixel():
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    x = torch.randn(5, 1, 4, 4)
    stats = activation_stats(net, {"0": "1"}, [(x, None)])["0"]
    assert stats.count == 5 * 16
    assert torch.isclose(stats.apoz[0], (x <= 0).float().mean())
    assert torch.isclose(stats.mean[1], x.clamp(max=0).abs().mean())


def test_unrectified_outputs_are_scored_by_magnitude():
    cnn = build_cnn(
        CNNParams(
            channels=[3],
            conv_activation="linear",
            norm="batch",
            norm_position="after_activation",
            dense=[],
        ),
        _info((1, 6, 6)),
    )
    (chain,) = unit_chains(cnn)
    assert chain.observe == "2" and not chain.rectified  # conv → BN → pool: what leaves it
    batches = [(torch.randn(4, 1, 6, 6), None)]
    stats = activation_stats(_randomized(cnn), {"0": "2"}, batches, {"0": False})["0"]
    assert torch.equal(unit_scores(stats, "apoz"), stats.mean_abs)  # zeros mean nothing here
    assert torch.equal(hidden_unit_scores(cnn, batches, "apoz")["0"], stats.mean_abs)


@pytest.mark.parametrize("position", ["before_activation", "after_activation"])
def test_slicing_an_mlp_equals_zeroing_the_removed_units(position):
    torch.manual_seed(0)
    p = MLPParams(hidden=[16, 12], norm="batch", norm_position=position, dropout=0.1)
    model = _randomized(build_mlp(p, _info((20,), 3)))
    calls = []
    norm = next(m for m in model if isinstance(m, nn.BatchNorm1d))
    norm.register_forward_pre_hook(lambda m, inputs: calls.append(m.num_features))
    keeps = _random_keeps(model)
    sliced = _slice_all(model, keeps)
    x = torch.randn(7, 20)
    torch.testing.assert_close(sliced(x), _masked(model, keeps)(x), rtol=1e-5, atol=1e-6)
    assert calls == [8, 16]  # the norm was narrowed in place: its hooks still run
    assert [sliced[i].out_features for i in (1, 5)] == [8, 6]
    assert sliced[9].in_features == 6 and sliced[9].out_features == 3
    assert [n for n, _ in sliced.named_modules()] == [n for n, _ in model.named_modules()]


CONV_MODELS = {
    "cnn_flatten": lambda: build_cnn(
        CNNParams(
            channels=[4, 6],
            padding="valid",
            conv_activation="linear",
            norm="batch",
            norm_position="after_activation",
            dense=[5],
            dense_norm=True,
        ),
        _info((1, 12, 12)),
    ),
    "cnn_gap": lambda: build_cnn(
        CNNParams(channels=[4, 6], dense=[5], head="gap"), _info((1, 8, 8))
    ),
    "vgg_flatten": lambda: build_vgg_small(
        VGGParams(stages=[[4], [6, 6]], dense=[5], head="flatten"), _info((3, 8, 8))
    ),
    "vgg_gap": lambda: build_vgg_small(VGGParams(stages=[[4], [6]], dense=[5]), _info((3, 8, 8))),
}


@pytest.mark.parametrize("name", sorted(CONV_MODELS))
def test_slicing_conv_nets_is_exact_and_rebuilds_from_shapes(name):
    torch.manual_seed(0)
    model = _randomized(CONV_MODELS[name]())
    keeps = _random_keeps(model)
    sliced = _slice_all(model, keeps).eval()
    x = torch.randn(3, *model_input(name))
    torch.testing.assert_close(sliced(x), _masked(model, keeps)(x), rtol=1e-5, atol=1e-5)
    for c in unit_chains(sliced):
        m = sliced.get_submodule(c.producer)
        assert (m.out_features if isinstance(m, nn.Linear) else m.out_channels) == len(
            keeps[c.producer]
        )
    rebuilt = CONV_MODELS[name]()
    apply_shapes(rebuilt, changed_shapes(sliced, CONV_MODELS[name]()))
    rebuilt.load_state_dict(sliced.state_dict())
    assert torch.equal(rebuilt.eval()(x), sliced(x))


def model_input(name: str) -> tuple[int, ...]:
    return (1, 12, 12) if name == "cnn_flatten" else (3, 8, 8) if "vgg" in name else (1, 8, 8)


def test_layers_that_cannot_be_narrowed_exactly_are_kept_whole():
    grouped = build_cnn(CNNParams(channels=[4, 8], groups=2, dense=[]), _info((1, 8, 8)))
    assert [c.blocker is not None for c in unit_chains(grouped)] == [True, True]
    assert "grouped convolution" in unit_chains(grouped)[0].blocker
    moe = build_mlp(MLPParams(hidden=[16, 8], moe={"layer": 0}), _info((10,), 3))
    assert [bool(c.blocker) for c in unit_chains(moe)] == [True, False]
    layer_norm = build_mlp(MLPParams(hidden=[8], norm="layer"), _info((10,), 3))
    assert "normalizes across units" in unit_chains(layer_norm)[0].blocker


def _fake_ctx(arch: str) -> SimpleNamespace:
    recipe = SimpleNamespace(model=SimpleNamespace(name=arch))
    return SimpleNamespace(prepared=SimpleNamespace(recipe=recipe))


def test_other_architectures_and_bad_amounts_are_refused():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(RecipeError, match="not model 'resnet'; use structured"):
        build_neurons(model, 0.5, _fake_ctx("resnet"), MethodOptions())
    with pytest.raises(RecipeError, match="an mlp has no channels; use neurons"):
        build_channels(model, 0.5, _fake_ctx("mlp"), MethodOptions())
    with pytest.raises(RecipeError, match=r"in \(0, 1\)"):
        build_neurons(model, 1.5, _fake_ctx("mlp"), MethodOptions())
    assert {"neurons", "channels"} <= set(METHODS.names())


class _ScriptedCtx:
    """A context whose fine-tuning is recorded and whose scores are scripted."""

    def __init__(self, scores: list[float], reference: float = 0.9, drop: float = 0.05):
        self.scores, self.reference_val, self.target_drop = list(scores), reference, drop
        self.selection_split, self.finetuned = "val", []

    def finetune(self, model, epochs, extra=(), lr_factor=1.0):
        self.finetuned.append((epochs, lr_factor))
        return model

    def score(self, model, split=None):
        return self.scores.pop(0)

    meets_target = CompressContext.meets_target

    def progress(self, line):
        pass


def _iterate(scores: list[float], steps: int):
    ctx = _ScriptedCtx(scores)
    model = nn.Linear(1, 1)

    def step(m, k, fraction):
        m.weight.data.fill_(k)  # which step a returned copy comes from

    opts = MethodOptions(steps=steps, finetune_epochs=3, lr_factor=0.5)
    run = prune_iteratively(model, 0.6, ctx, opts, step, lambda m: {"w": int(m.weight)})
    return run, ctx


def test_iterative_pruning_returns_the_last_step_within_the_target():
    run, ctx = _iterate([0.89, 0.86, 0.80, 0.95], steps=4)
    assert len(run.steps) == 3 and ctx.finetuned == [(3, 0.5)] * 3  # stopped at step 3
    assert run.chosen == 2 and int(run.model.weight) == 2 and not run.reached
    assert [s["met_target"] for s in run.steps] == [True, True, False]
    assert [s["amount"] for s in run.steps] == [0.15, 0.3, 0.45]


def test_iterative_pruning_without_any_good_step_returns_the_best():
    run, _ = _iterate([0.80, 0.99], steps=2)
    assert len(run.steps) == 1 and run.chosen == 1 and not run.reached
    run, _ = _iterate([0.90, 0.88], steps=2)
    assert run.reached and run.chosen == 2 and int(run.model.weight) == 2


def test_neurons_prunes_the_seed_mlp_end_to_end(trained):
    source = load_source(trained["mlp"], target_drop=0.05)
    before = source.ctx.score(source.model, "test")
    opts = MethodOptions(finetune_epochs=1, score="apoz", calibration_batches=4)
    result = build_neurons(source.model, 0.625, source.ctx, opts)
    assert result.details["layers"] == {"1": {"before": 128, "after": 48}}
    assert result.model[1].out_features == 48 and result.model[4].in_features == 48
    assert result.model[4].out_features == 10 and source.model[1].out_features == 128
    assert result.met_target and result.method == "neurons:0.625"
    assert source.ctx.score(result.model, "test") > before - 0.05
    assert any("smaller dense model" in n for n in result.notes)


def test_channels_prunes_a_seed_cnn_end_to_end(trained):
    source = load_source(trained["cnn"], target_drop=0.10)
    opts = MethodOptions(finetune_epochs=1, steps=2, score="mean", calibration_batches=4)
    result = build_channels(source.model, 0.5, source.ctx, opts)
    convs = [m for m in result.model if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8] and result.model[7].in_features == 8 * 25
    assert result.model[7].out_features == 32  # dense units are left to `neurons`
    assert [s["widths"]["0"] for s in result.details["steps"]] == [6, 4]
    assert result.met_target and source.ctx.score(result.model, "test") > 0.8


def test_neurons_narrows_only_the_dense_head_of_a_cnn(trained):
    source = load_source(trained["cnn"])
    opts = MethodOptions(finetune_epochs=0, calibration_batches=2)
    result = build_neurons(source.model, 0.5, source.ctx, opts)
    assert result.details["layers"] == {"7": {"before": 32, "after": 16}}
    assert result.model[9].num_features == 16 and result.model[10].in_features == 16
    assert [m.out_channels for m in result.model if isinstance(m, nn.Conv2d)] == [8, 16]
