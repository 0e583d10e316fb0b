"""`stages`: per-stage frozen parts and learning-rate factors, resumable."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab.engine import Technique
from trainlab.errors import RecipeError

RECIPE = {
    "name": "stages",
    "data": {"dataset": "digits", "preprocessing": {"scale": "minmax"}},
    "model": {"name": "mlp", "hidden": [32, 16]},
    "train": {"epochs": 4, "batch_size": 64, "lr": 0.01, "threads": 1},
}


class LrAndFrozen(Technique):
    """Records, per epoch, the learning rate in use and whether the first layer trains."""

    order = 50

    def __init__(self) -> None:
        self.rows: list[tuple[float, bool]] = []

    def on_after_step(self, state) -> None:
        if state.batch_index == 0:
            first = state.model[1].weight
            self.rows.append((state.optimizer.param_groups[0]["lr"], first.requires_grad))


def _recipe(stages, **extra):
    return {**RECIPE, "techniques": [{"name": "stages", "stages": stages, **extra}]}


def test_each_stage_freezes_its_parts_and_runs_at_its_rate(tmp_path):
    probe = LrAndFrozen()
    stages = [{"epochs": 2, "freeze": ["backbone"]}, {"lr": 0.1}]
    run = trainlab.train(_recipe(stages), out=tmp_path / "r", extra_techniques=[probe])
    assert [frozen for _, frozen in probe.rows] == [False, False, True, True]
    assert [lr for lr, _ in probe.rows] == pytest.approx([0.01, 0.01, 0.001, 0.001])
    assert run.history[-1]["train_loss"] < run.history[1]["train_loss"]  # stage 2 trains on
    summary = run.summary()["stages"]  # what `trainlab train --json` prints
    assert [(s["stage"], s["epochs"], s["lr"]) for s in summary] == [(1, 2, 1.0), (2, 2, 0.1)]
    assert summary[1]["val_accuracy"] == run.history[-1]["val_accuracy"]


def test_the_backbone_does_not_move_while_frozen(tmp_path):
    one = trainlab.train(_recipe([{"freeze": ["backbone"]}]), ["train.epochs=1"],
                         out=tmp_path / "a")  # fmt: skip
    init = trainlab.train(RECIPE, ["train.epochs=1", "train.lr=1e-12"], out=tmp_path / "b")
    trained, start = load_file(one.run_dir / "model.safetensors"), load_file(
        init.run_dir / "model.safetensors"
    )
    assert torch.allclose(trained["1.weight"], start["1.weight"], atol=1e-9)  # backbone
    assert not torch.allclose(trained["5.weight"], start["5.weight"])  # the head trained


def test_a_killed_run_resumes_in_its_stage(tmp_path):
    stages = [{"epochs": 2, "freeze": ["backbone"]}, {"lr": 0.1}]
    full = trainlab.train(_recipe(stages), out=tmp_path / "full")

    class Crash(Technique):
        order = 2000

        def on_epoch_end(self, state) -> None:
            if state.epoch == 3:
                raise RuntimeError("crash after epoch 3")

    with pytest.raises(Exception, match="crash"):
        trainlab.train(_recipe(stages), out=tmp_path / "killed", extra_techniques=[Crash()])
    resumed = trainlab.train(_recipe(stages), out=tmp_path / "killed")
    assert resumed.metrics == full.metrics


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{"freeze": ["backbone"]}, {"epochs": 1}], "only the last stage"),
        ([{"epochs": 4}, {"lr": 0.1}], "after the fit's 4 epochs"),
        ([{"epochs": 1, "freeze": ["backbone", "head"]}, {}], "freezes every parameter"),
        ([{"epochs": 1, "freeze": ["bakbone"]}, {}], "did you mean"),
    ],
)
def test_impossible_stages_are_refused(tmp_path, stages, message):
    with pytest.raises(RecipeError, match=message):
        trainlab.train(_recipe(stages), out=tmp_path / "r")


def test_stages_conflict_with_freeze():
    recipe = {**_recipe([{"epochs": 1}, {}]), "techniques": [
        {"name": "stages", "stages": [{"epochs": 1}, {}]},
        {"name": "freeze", "layers": ["backbone"]},
    ]}  # fmt: skip
    with pytest.raises(RecipeError, match="freeze"):
        trainlab.load_recipe(recipe)
