"""`data.val_size: 0`: train on every non-test row (the refit once choices are made)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import trainlab
from trainlab.data import DATASETS
from trainlab.data.splits import canonical_split
from trainlab.errors import RecipeError

DIGITS = {
    "data": {"dataset": "digits", "val_size": 0, "preprocessing": {"scale": "minmax"}},
    "model": {"name": "mlp", "hidden": [32]},
    "train": {"epochs": 3, "batch_size": 32, "threads": 1},
}


def test_no_validation_split_trains_on_all_non_test_rows_and_keeps_the_test_split():
    data = DATASETS.get("digits").builder(None)
    usual = canonical_split(data, val_size=0.1)
    refit = canonical_split(data, val_size=0)
    np.testing.assert_array_equal(refit.test.X, usual.test.X)  # the same test rows
    assert len(refit.val) == 0 and refit.val.X.shape[1:] == usual.val.X.shape[1:]
    assert len(refit.train) == len(usual.train) + len(usual.val) == 1437
    train_rows = {r.tobytes() for r in refit.train.X}
    assert all(r.tobytes() in train_rows for r in np.concatenate([usual.train.X, usual.val.X]))


def test_a_refit_run_reports_test_metrics_and_no_validation(tmp_path):
    run = trainlab.train(copy.deepcopy(DIGITS), out=tmp_path / "r")
    assert run.status == "completed"
    assert not [k for k in run.metrics if k.startswith("val_")]
    # 3 epochs at the default lr: seeds 0-5 give 0.77-0.85 (0.8 failed at seed 2);
    # the point is that a refit run trains and is tested (chance is 0.1)
    assert run.metrics["test_accuracy"] > 0.6
    assert run.history[-1]["step"] == 3 * math.ceil(1437 / 32)  # every non-test row trains
    assert all("val_loss" not in row for row in run.history)


def test_early_stopping_without_validation_names_the_fix(tmp_path):
    r = copy.deepcopy(DIGITS)
    r["techniques"] = [{"name": "early_stopping", "monitor": "val_accuracy"}]
    with pytest.raises(RecipeError, match="needs a validation split, but data.val_size is 0"):
        trainlab.train(r, out=tmp_path / "r")


@pytest.mark.parametrize("command", ["tune", "ablate", "doctor"])
def test_studies_that_choose_by_validation_refuse_a_refit_recipe(command, tmp_path):
    r = copy.deepcopy(DIGITS)
    with pytest.raises(RecipeError, match=f"{command}: chooses by validation.*val_size is 0"):
        if command == "tune":
            from trainlab.studies.tune import tune

            tune(r, {"train.lr": [0.01, 0.1]}, trials=1, out=tmp_path / "t")
        elif command == "ablate":
            from trainlab.studies.ablate import ablate

            ablate(r, ["l2"], seeds=1, runs_root=tmp_path)
        else:
            from trainlab.studies.doctor import doctor

            doctor(r, out=tmp_path / "d")
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_a_plateau_schedule_without_validation_is_refused_at_load(tmp_path):
    r = copy.deepcopy(DIGITS)
    r["train"]["schedule"] = "plateau"
    with pytest.raises(RecipeError, match="plateau needs a validation split.*val_size is 0"):
        trainlab.train(r, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before a single epoch was trained
