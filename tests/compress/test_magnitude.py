"""`magnitude` and `threshold` pruning: the iterative loop, its target, a real MNIST run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import trainlab
from trainlab.compress.magnitude import cubic_schedule, current_sparsity
from trainlab.compress.masks import KeepMasks, prunable_weights, sparsity_report
from trainlab.compress.methods import METHODS, MethodOptions
from trainlab.compress.source import load_source
from trainlab.errors import RecipeError

from ..conftest import EXAMPLES


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """The seed's MNIST MLP (784-128-10, dropout) trained for one epoch."""
    tmp = tmp_path_factory.mktemp("mnist")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINLAB_RUNS", str(tmp / "runs"))
        mp.setenv("TRAINLAB_STORE", f"sqlite:///{tmp / 'index.db'}")
        trainlab.train(EXAMPLES / "mnist_mlp_dropout.yaml", ["train.epochs=1"], out=tmp / "src")
    return tmp / "src"


def build(name: str, model, amount, ctx, **options):
    return METHODS.get(name).builder(model, amount, ctx, MethodOptions(**options))


class ScriptedContext:
    """A CompressContext stand-in whose score falls one for one with the sparsity, so
    which step meets the target is known in advance."""

    selection_split = "val"
    reference_val = 1.0

    def __init__(self, target_drop: float | None) -> None:
        self.target_drop = target_drop
        self.finetuned: list[tuple[int, list]] = []
        self.lines: list[str] = []

    def progress(self, line: str) -> None:
        self.lines.append(line)

    def finetune(self, model, epochs, extra=(), lr_factor=1.0):
        self.finetuned.append((epochs, list(extra)))
        return model

    def score(self, model, split=None) -> float:
        return 1.0 - current_sparsity(model)

    def meets_target(self, score: float) -> bool:
        return self.target_drop is None or score >= self.reference_val - self.target_drop


def small_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(),
                         nn.Linear(30, 5))  # fmt: skip


def test_both_methods_are_registered():
    assert "magnitude" in METHODS and "threshold" in METHODS


def test_the_cubic_schedule_prunes_most_first_and_ends_at_the_target():
    steps = cubic_schedule(0.0, 0.9, 3)
    assert steps[-1] == pytest.approx(0.9)
    gains = [b - a for a, b in zip([0.0, *steps], steps, strict=False)]
    assert gains == sorted(gains, reverse=True)
    assert cubic_schedule(0.5, 0.9, 1) == [pytest.approx(0.9)]


def test_without_a_target_every_step_runs_to_the_sparsity_holding_the_masks():
    ctx = ScriptedContext(target_drop=None)
    result = build("magnitude", small_mlp(), 0.9, ctx, steps=3, finetune_epochs=2)
    assert result.met_target
    assert [s["step"] for s in result.details["steps"]] == [1, 2, 3]
    total = 20 * 30 + 30 * 30
    assert abs(result.details["sparsity"] * total - 0.9 * total) <= 1
    assert len(ctx.lines) == 3 and all(epochs == 2 for epochs, _ in ctx.finetuned)
    assert all(isinstance(extra[0], KeepMasks) for _, extra in ctx.finetuned)
    assert result.details["excluded"] == ["4.weight"] and "4.weight" not in result.masks
    json.dumps(result.details)


def test_the_loop_stops_at_the_first_step_missing_the_target_and_returns_the_one_before():
    ctx = ScriptedContext(target_drop=0.7)  # step 1 (63 %) meets it, step 2 (87 %) does not
    model = small_mlp()
    result = build("magnitude", model, 0.9, ctx, steps=3, finetune_epochs=1)
    steps = result.details["steps"]
    assert [s["met_target"] for s in steps] == [True, False]
    assert not result.met_target and result.details["returned_meets_target"]
    assert result.details["returned_step"] == 1
    assert result.model is not model  # a copy taken at step 1; `model` went on to step 2
    assert current_sparsity(result.model) == pytest.approx(steps[0]["sparsity"])
    assert current_sparsity(model) == pytest.approx(steps[1]["sparsity"])
    assert sparsity_report(result.model, result.masks)["overall"]["zeros"] == sum(
        int((m == 0).sum()) for m in result.masks.values()
    )
    assert any("Stopped at step 2" in note for note in result.notes)


def test_when_even_the_first_step_misses_the_target_its_model_is_returned_as_missing():
    ctx = ScriptedContext(target_drop=0.1)
    result = build("magnitude", small_mlp(), 0.9, ctx, steps=3, scope="layer")
    assert len(result.details["steps"]) == 1
    assert not result.met_target and not result.details["returned_meets_target"]
    for mask in result.masks.values():  # layer scope: each layer at step 1's sparsity
        assert abs(int((mask == 0).sum()) - cubic_schedule(0, 0.9, 3)[0] * mask.numel()) <= 1


@pytest.mark.parametrize(
    ("name", "amount", "options", "message"),
    [
        ("magnitude", 1.5, {}, r"amount must be a sparsity between 0 and 1 \(got 1.5\)"),
        ("magnitude", None, {}, r"e\.g\. magnitude:0\.9"),
        ("threshold", -1.0, {}, r"amount must be a positive weight magnitude"),
        ("threshold", 100.0, {}, r"would zero every weight of '0\.weight'"),
    ],
)
def test_amounts_and_options_a_user_gets_wrong_are_recipe_errors(name, amount, options, message):
    with pytest.raises(RecipeError, match=message):
        build(name, small_mlp(), amount, ScriptedContext(None), **options)


def test_mnist_train_prune_retrain_score(mnist_run):
    """End to end: the seed's MLP pruned to half its weights in two steps of prune +
    one epoch of retraining stays within five points of its validation accuracy."""
    src = load_source(mnist_run, target_drop=0.05)
    before = {n: w.detach().clone() for n, w in prunable_weights(src.model).items()}
    result = build("magnitude", src.model, 0.5, src.ctx, steps=2, finetune_epochs=1)
    assert result.met_target and len(result.details["steps"]) == 2
    report = sparsity_report(result.model, result.masks)
    total = report["overall"]["total"]
    assert set(report["layers"]) == set(before) == {"1.weight"}
    assert abs(report["overall"]["zeros"] - 0.5 * total) <= 1
    assert result.model[4].weight.count_nonzero() == result.model[4].weight.numel()
    score = src.ctx.score(result.model)
    assert score == pytest.approx(result.details["steps"][-1]["score"])
    assert score >= src.ctx.reference_val - 0.05
    assert src.ctx.score(result.model, "test") > 0.8
    kernels = result.details["sparse_kernels"]["1.weight"]
    assert kernels["shape"] == [128, 784] and kernels["batch"] == 256
    assert any("nothing faster" in note for note in result.notes)
    json.dumps(result.details)


def test_mnist_threshold_zeroes_exactly_the_small_weights(mnist_run):
    src = load_source(mnist_run)
    w = src.model[1].weight.detach().clone()
    t = float(w.abs().quantile(0.3))
    result = build("threshold", src.model, t, src.ctx, finetune_epochs=0)
    assert torch.equal(result.masks["1.weight"] == 0, w.abs() < t)
    assert torch.equal(result.model[1].weight == 0, w.abs() < t)
    assert result.details["steps"][0]["sparsity"] == pytest.approx(0.3, abs=1e-3)


def test_mnist_an_impossible_target_stops_early_with_the_last_model_meeting_it(mnist_run):
    src = load_source(mnist_run, target_drop=0.0)
    result = build("magnitude", src.model, 0.99, src.ctx, steps=4, finetune_epochs=0)
    steps = result.details["steps"]
    assert not result.met_target
    assert all(s["met_target"] for s in steps[:-1]) and not steps[-1]["met_target"]
    returned = steps[result.details["returned_step"] - 1]
    assert result.details["returned_meets_target"] == returned["met_target"]
    assert current_sparsity(result.model) == pytest.approx(returned["sparsity"])
    assert src.ctx.score(result.model) == pytest.approx(returned["score"])


@pytest.mark.slow
def test_mnist_fully_trained_at_90_percent_sparsity_loses_at_most_half_a_point(tmp_path):
    """The bar: the 5-epoch seed MLP at 90 % sparsity (3 steps, 2 epochs each)."""
    run = trainlab.train(EXAMPLES / "mnist_mlp_dropout.yaml", out=tmp_path / "src")
    src = load_source(run.run_dir, target_drop=0.005)
    before = src.ctx.score(src.model, "test")
    result = build("magnitude", src.model, 0.9, src.ctx, steps=3, finetune_epochs=2)
    assert result.met_target
    assert abs(result.details["sparsity"] - 0.9) < 1e-4
    assert src.ctx.score(result.model, "test") >= before - 0.005
