"""Pruners stop bad trials early; multi-objective studies find a Pareto front."""

from __future__ import annotations

import csv

import pytest

from trainlab.studies.tune import tune

# Half of this space is hopeless: lr 1e-5 barely moves an MLP on digits in 4 epochs.
BAD_REGIONS = {
    "train.lr": [1e-5, 2e-5, 0.01, 0.03],
    "model.hidden": [[16], [32]],
}


@pytest.mark.parametrize(
    "pruner", ["median", "asha", pytest.param("hyperband", marks=pytest.mark.slow)]
)
def test_pruner_really_prunes_bad_trials(pruner, digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 4
    options = {"n_startup_trials": 2, "n_warmup_steps": 0} if pruner == "median" else {}
    result = tune(
        digits_recipe,
        BAD_REGIONS,
        trials=8,
        sampler="grid",
        pruner=pruner,
        pruner_options=options,
        out=tmp_path / pruner,
        final=False,
        plots=False,
    )
    data = result.summary()
    assert data["trials"]["pruned"] > 0
    assert data["trials"]["complete"] + data["trials"]["pruned"] == 8
    assert data["epochs_total"] < 8 * 4  # pruning saved epochs
    assert data["best_params"]["train.lr"] >= 0.01
    assert data["best_value"] > 0.85
    # a pruned trial's run ended as 'stopped' with reason 'pruned' and fewer epochs
    import json

    pruned_runs = [
        json.loads(p.read_text())
        for p in (tmp_path / pruner).glob("trial-*/run.json")
        if json.loads(p.read_text())["stop_reason"] == "pruned"
    ]
    assert pruned_runs and all(r["status"] == "stopped" for r in pruned_runs)
    assert all(r["epochs_completed"] < 4 for r in pruned_runs)


def test_trials_never_see_the_test_split_only_the_final_best_recipe_does(digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 2
    result = tune(
        digits_recipe,
        {"train.lr": [0.003, 0.03]},
        trials=2,
        sampler="grid",
        out=tmp_path / "s",
        plots=False,
    )
    import json

    for metrics in (tmp_path / "s").glob("trial-*/metrics.json"):
        assert not any(k.startswith("test_") for k in json.loads(metrics.read_text()))
    best = result.summary()["best_run"]
    assert "test_accuracy" in best["metrics"]
    assert best["metrics"]["val_accuracy"] == pytest.approx(result.best_value)


def test_multi_objective_pareto_front_with_pruning_on_the_first_objective(digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 3
    space = {"train.lr": [1e-5, 0.01, 0.03], "model.hidden": [[4], [16], [64]]}
    result = tune(
        digits_recipe,
        space,
        trials=9,
        sampler="grid",
        pruner="median",
        pruner_options={"n_startup_trials": 2, "n_warmup_steps": 0},
        objective=["val_accuracy", "params"],
        out=tmp_path / "mo",
        final=False,
    )
    data = result.summary()
    assert data["objectives"] == ["max:val_accuracy", "min:params"]
    front = data["pareto"]
    assert front and data["trials"]["pruned"] > 0
    # no point of the front dominates another
    for a in front:
        for b in front:
            if a is not b:
                assert not (
                    a["val_accuracy"] >= b["val_accuracy"]
                    and a["params"] <= b["params"]
                    and (a["val_accuracy"], a["params"]) != (b["val_accuracy"], b["params"])
                )
    # parameter counts are the real sizes of 64-in MLPs: 64*h + h + h*10 + 10
    sizes = {64 * h + h + h * 10 + 10 for h in (4, 16, 64)}
    assert {row["params"] for row in front} <= sizes
    with open(data["pareto_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == [row["trial"] for row in front]
    assert (tmp_path / "mo" / "plots" / "pareto_front.png").stat().st_size > 1000


def test_cross_validated_objective_is_the_mean_over_folds(digits_recipe, tmp_path):
    digits_recipe["train"]["epochs"] = 1
    result = tune(
        digits_recipe,
        {"train.lr": [0.003, 0.03]},
        trials=2,
        sampler="grid",
        cv=3,
        out=tmp_path / "cv",
        final=False,
        plots=False,
    )
    import json

    import optuna

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "cv" / "study.journal"))
    )
    study = optuna.load_study(study_name=result.study, storage=storage)
    for t in study.trials:
        folds = t.user_attrs["val_accuracy_folds"]
        assert len(folds) == 3 and len(set(folds)) > 1  # three different validation folds
        assert t.value == pytest.approx(sum(folds) / 3)
        on_disk = [
            json.loads(
                (
                    tmp_path / "cv" / f"trial-{t.number:04d}" / f"fold-{k}" / "metrics.json"
                ).read_text()
            )["val_accuracy"]
            for k in range(3)
        ]
        assert on_disk == pytest.approx(folds)
    assert result.summary()["epochs_total"] == 2 * 3


def test_repeats_average_over_seeds_and_objectives_must_be_validation_metrics(
    digits_recipe, tmp_path
):
    import trainlab

    with pytest.raises(trainlab.RecipeError, match="never guides a search.*'val_accuracy'"):
        tune(digits_recipe, {"train.lr": [0.01]}, objective="test_accuracy", out=tmp_path / "t")
    digits_recipe["train"]["epochs"] = 1
    result = tune(
        digits_recipe,
        {"train.lr": [0.01]},
        trials=1,
        sampler="grid",
        repeats=2,
        out=tmp_path / "r",
        final=False,
        plots=False,
    )
    runs = sorted(p.name for p in (tmp_path / "r" / "trial-0000").iterdir())
    assert runs == ["seed-0", "seed-1"]
    assert result.summary()["epochs_total"] == 2
