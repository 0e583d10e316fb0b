"""The engine: event order, stopping with a reason, determinism, divergence."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab.engine import Event, StopFit, StopReason, Technique
from trainlab.runs import raise_if_diverged


class Recorder(Technique):
    """Records every event it sees."""

    def __init__(self):
        self.events = []
        for event in Event:
            setattr(self, f"on_{event.value}", lambda s, e=event: self.events.append(e))


def test_events_fire_in_documented_order(breast_cancer_recipe, tmp_path):
    rec = Recorder()
    breast_cancer_recipe["train"]["epochs"] = 1
    breast_cancer_recipe["train"]["batch_size"] = 256  # 409 train rows → 2 batches
    trainlab.train(breast_cancer_recipe, out=tmp_path / "r", extra_techniques=[rec])
    per_batch = [
        Event.BATCH_START,
        Event.AFTER_FORWARD,
        Event.AFTER_LOSS,
        Event.AFTER_BACKWARD,
        Event.BEFORE_STEP,
        Event.AFTER_STEP,
        Event.BATCH_END,
    ]
    expected = (
        [Event.FIT_START, Event.EPOCH_START]
        + per_batch * 2
        + [
            Event.EVAL_START,  # the train_eval subset
            Event.EVAL_END,
            Event.EVAL_START,  # validation
            Event.EVAL_END,
            Event.EPOCH_END,
            Event.EVAL_START,
            Event.EVAL_END,
            Event.FIT_END,
        ]
    )
    assert rec.events == expected


class StopAtEpoch(Technique):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state):
        if state.epoch == self.epoch:
            raise StopFit(StopReason.PATIENCE_EXHAUSTED, "scripted stop")


def test_a_technique_stops_the_fit_and_the_reason_is_recorded(breast_cancer_recipe, tmp_path):
    run = trainlab.train(
        breast_cancer_recipe, out=tmp_path / "r", extra_techniques=[StopAtEpoch(2)]
    )
    assert run.status == "stopped" and run.stop_reason == "patience_exhausted"
    assert len(run.history) == 2
    on_disk = json.loads((tmp_path / "r" / "run.json").read_text())
    assert on_disk["stop_reason"] == "patience_exhausted"
    assert "test_accuracy" in run.metrics  # the test split is still evaluated


def test_same_recipe_and_seed_give_identical_numbers(digits_recipe, tmp_path):
    a = trainlab.train(digits_recipe, out=tmp_path / "a")
    b = trainlab.train(digits_recipe, out=tmp_path / "b")
    c = trainlab.train(digits_recipe, ["train.seed=1"], out=tmp_path / "c")
    assert a.metrics == b.metrics
    wa, wb = load_file(a.run_dir / "model.safetensors"), load_file(b.run_dir / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics != c.metrics


def test_metrics_cover_each_task(breast_cancer_recipe, digits_recipe, tmp_path):
    binary = trainlab.train(breast_cancer_recipe, out=tmp_path / "bin")
    assert {"test_accuracy", "test_f1", "test_roc_auc", "test_loss"} <= set(binary.metrics)
    assert binary.metrics["test_accuracy"] > 0.9 and binary.metrics["test_roc_auc"] > 0.95
    multi = trainlab.train(digits_recipe, out=tmp_path / "multi")
    assert multi.metrics["test_accuracy"] > 0.85 and "test_f1" not in multi.metrics
    reg = trainlab.train(
        {
            "data": {"dataset": "diabetes", "preprocessing": {"scale": "standard"}},
            "model": {"name": "mlp", "hidden": [32]},
            "train": {"epochs": 30, "lr": 0.01},
        },
        out=tmp_path / "reg",
    )
    assert {"test_mae", "test_rmse", "test_r2"} <= set(reg.metrics)
    assert reg.metrics["test_r2"] > 0.2  # 0.298 with standardized targets, 0.313 raw (seed 0)


class PoisonLoss(Technique):
    """Makes the loss NaN from a given epoch on (0-based epoch index)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_after_loss(self, state):
        if state.epoch >= self.epoch and state.batch_index == 3:
            state.loss = state.loss * float("nan")


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(digits_recipe, tmp_path):
    out = tmp_path / "r"
    run = trainlab.train(digits_recipe, out=out, extra_techniques=[PoisonLoss(2)])
    assert run.status == "diverged" and run.stop_reason == "non_finite_loss"
    assert "epoch 3, batch 4" in run.info["stop_message"]
    assert run.info["epochs_completed"] == 2
    # the weights on disk are those of epoch 2, loadable and finite
    model = trainlab.load(out)
    assert all(torch.isfinite(p).all() for p in model.model.parameters())
    saved = load_file(out / "checkpoints" / "epoch-0002" / "model.safetensors")
    final = load_file(out / "model.safetensors")
    assert all(torch.equal(saved[k], final[k]) for k in saved)
    with pytest.raises(trainlab.DivergenceError, match="epoch 3, batch 4"):
        raise_if_diverged(run)


def test_a_real_exploding_learning_rate_is_caught(tmp_path):
    run = trainlab.train(
        {
            "data": {"dataset": "diabetes"},
            "model": {"name": "mlp", "hidden": [64, 64]},
            "train": {"epochs": 3, "optimizer": "sgd", "lr": 10.0},
        },
        out=tmp_path / "r",
    )
    assert run.status == "diverged"
    assert "loss became" in run.info["stop_message"]
