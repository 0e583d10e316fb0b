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


class CrashAfter(Technique):
    """Raises at the end of the epoch after which `epoch` epochs are complete."""

    order = 2000

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state) -> None:
        if state.epoch == self.epoch:
            raise RuntimeError(f"crash with {self.epoch} epochs done")


def _resumed_and_full(tmp_path, recipe, overrides, crash_after: int):
    """(metrics of a run crashed after `crash_after` epochs then resumed, of one never
    interrupted)."""
    full = trainlab.train(recipe, overrides, out=tmp_path / "full")
    with pytest.raises(Exception, match="crash"):
        trainlab.train(recipe, overrides, out=tmp_path / "killed",
                       extra_techniques=[CrashAfter(crash_after)])  # fmt: skip
    resumed = trainlab.train(recipe, overrides, out=tmp_path / "killed")
    return resumed.metrics, full.metrics


def test_a_killed_run_resumes_in_its_stage(tmp_path):
    stages = [{"epochs": 2, "freeze": ["backbone"]}, {"lr": 0.1}]
    resumed, full = _resumed_and_full(tmp_path, _recipe(stages), [], crash_after=3)
    assert resumed == full


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


class GroupRates(Technique):
    """Records, per epoch, each optimizer param group's part and learning rate."""

    order = 50

    def __init__(self) -> None:
        self.rows: list[list[tuple[str, float]]] = []

    def on_after_step(self, state) -> None:
        if state.batch_index == 0:
            self.rows.append([(g.get("part", "-"), g["lr"]) for g in state.optimizer.param_groups])


def test_a_learning_rate_range_spreads_from_the_first_block_to_the_head(tmp_path):
    probe = GroupRates()
    stages = [{"epochs": 1, "freeze": ["backbone"]}, {"lr": [0.01, 1.0]}]
    trainlab.train(_recipe(stages), ["train.epochs=2"], out=tmp_path / "r",
                   extra_techniques=[probe])  # fmt: skip
    first, second = probe.rows
    parts = list(dict.fromkeys(part for part, _ in second if part != "rest"))
    assert parts == ["block1", "block2", "head"]
    assert [lr for _, lr in first] == pytest.approx([0.01] * len(first))  # stage 1: one rate
    rates = {part: lr for part, lr in second}
    # fastai's slice(lo, hi): lo for the first block, hi for the head, geometric between
    assert rates["block1"] == pytest.approx(0.01 * 0.01)
    assert rates["block2"] == pytest.approx(0.01 * 0.1)
    assert rates["head"] == pytest.approx(0.01)


def test_unfreeze_last_blocks_keeps_the_earlier_ones_frozen(tmp_path):
    probe = LrAndFrozen()  # watches the first layer: block1
    stages = [{"epochs": 1, "freeze": ["backbone"]}, {"unfreeze": "last 1 block"}]
    run = trainlab.train(_recipe(stages), ["train.epochs=2"], out=tmp_path / "r",
                         extra_techniques=[probe])  # fmt: skip
    assert [frozen for _, frozen in probe.rows] == [False, False]
    start = trainlab.train(RECIPE, ["train.epochs=1", "train.lr=1e-12"], out=tmp_path / "s")
    trained, init = (load_file(r.run_dir / "model.safetensors") for r in (run, start))
    assert torch.allclose(trained["1.weight"], init["1.weight"], atol=1e-9)  # block1 frozen
    assert not torch.allclose(trained["3.weight"], init["3.weight"])  # block2 trained


def test_a_killed_run_with_a_rate_range_resumes_exactly(tmp_path):
    stages = [{"epochs": 1, "freeze": ["backbone"]}, {"lr": [0.1, 1.0]}]
    resumed, full = _resumed_and_full(tmp_path, _recipe(stages), ["train.epochs=3"],
                                      crash_after=1)  # fmt: skip
    assert resumed == full


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"unfreeze": "last 9 blocks"}, "the model has 2 blocks"),
        ({"unfreeze": "the last two"}, "not 'last N blocks'"),
        ({"lr": [1.0, 0.1]}, "lo <= hi"),
        ({"unfreeze": ["blok2"]}, "did you mean"),
    ],
)
def test_bad_unfreeze_and_ranges_are_refused(tmp_path, stage, message):
    with pytest.raises(RecipeError, match=message):
        trainlab.train(_recipe([{"epochs": 1, "freeze": ["backbone"]}, stage]),
                       out=tmp_path / "r")  # fmt: skip


def test_the_fine_tune_preset_is_fastais_two_phases_with_one_cycle_each(tmp_path):
    probe = GroupRates()
    recipe = {**_recipe(None), "techniques": [{"name": "stages", "preset": "fine_tune"}]}
    recipe["train"] = {**RECIPE["train"], "schedule": "cosine"}
    run = trainlab.train(recipe, out=tmp_path / "r", extra_techniques=[probe])
    stages = trainlab.load_recipe(run.run_dir / "recipe.yaml").techniques[0].params.stages
    assert [(s.epochs, s.freeze, s.lr) for s in stages] == [
        (1, ["backbone"], 1.0), (None, [], (0.005, 0.5))]  # fmt: skip
    rates = [{part: lr for part, lr in row} for row in probe.rows]
    # each stage starts its cosine anew at its full rate: epoch 2 at 0.5 × 0.01 on the head
    assert rates[1]["head"] == pytest.approx(0.005)
    assert rates[1]["block1"] == pytest.approx(0.005 / 100)
    assert rates[2]["head"] < rates[1]["head"]  # and decays within the stage


def test_a_killed_run_with_a_schedule_per_stage_resumes_exactly(tmp_path):
    recipe = {**_recipe(None), "techniques": [{"name": "stages", "preset": "fine_tune",
                                               "freeze_epochs": 2}]}  # fmt: skip
    recipe["train"] = {**RECIPE["train"], "schedule": "one_cycle"}
    resumed, full = _resumed_and_full(tmp_path, recipe, [], crash_after=2)  # at the stage boundary
    assert resumed == full


def test_stages_need_stages_or_the_preset():
    recipe = {**RECIPE, "techniques": [{"name": "stages"}]}
    with pytest.raises(RecipeError, match="preset: fine_tune"):
        trainlab.load_recipe(recipe)
