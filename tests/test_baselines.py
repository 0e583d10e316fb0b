"""Baselines beside every tabular run: gradient boosting and a linear model, same split."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import yaml

from trainlab import baselines as baselines_module
from trainlab.baselines import BASELINES, fit_baselines, wants_baselines
from trainlab.config.loading import load_recipe
from trainlab.prepare import prepare
from trainlab.runs import Run, train

from .conftest import EXAMPLES
from .test_cli import cli

EXTRA = {"fit_seconds", "train_rows"}


def census(**train_options) -> dict:
    """The 2,000-row census sample (a user's csv), 2 quick epochs."""
    return {
        "name": "census",
        "data": {
            "dataset": {
                "name": "csv",
                "path": str(EXAMPLES / "data" / "census_sample.csv"),
                "target": "income",
            }
        },
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, **train_options},
    }


@pytest.fixture
def diabetes_csv(tmp_path):
    """scikit-learn's diabetes data as a user's csv (target std ≈ 77, mean ≈ 152)."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    path = tmp_path / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path, float(frame["target"].std())


def _test_keys(metrics: dict) -> set[str]:
    return {k for k in metrics if k.startswith("test_")}


def test_a_csv_run_fits_both_baselines_with_the_networks_metric_names(tmp_path):
    run = train(census(), out=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "baselines.json").read_text())
    assert set(saved) == set(BASELINES)
    network = _test_keys(run.metrics)
    assert network >= {"test_loss", "test_accuracy", "test_f1", "test_roc_auc"}
    for name, values in saved.items():
        assert set(values) == network | EXTRA, name
        assert 0.7 < values["test_accuracy"] <= 1.0  # the census sample's majority is 0.76
        assert 0.7 < values["test_roc_auc"] <= 1.0
        assert 0 < values["fit_seconds"] < 30
        assert values["train_rows"] == 1440  # the training split: 2,000 less test and val
    # scored as scikit-learn scores them: the same predictions through the engine's metrics
    from sklearn.linear_model import LogisticRegression

    prepared = prepare(run.recipe)
    train_split, test_split = prepared.splits.train, prepared.splits.test
    linear = LogisticRegression(max_iter=1000).fit(train_split.X, train_split.y)
    accuracy = linear.score(test_split.X, test_split.y)
    assert saved["linear"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    # exposed on the run, in its summary and when it is read back; metrics.json stays flat
    assert run.baselines == saved
    assert run.summary()["baselines"] == saved
    assert Run.open(tmp_path / "run").baselines == saved
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(isinstance(v, float) for v in metrics.values())
    assert run.info["timings"]["baselines_seconds"] > 0


def test_regression_baselines_are_in_the_targets_original_units(tmp_path, diabetes_csv):
    path, target_std = diabetes_csv
    recipe = {
        "name": "diabetes",
        "data": {"dataset": {"name": "csv", "path": str(path), "target": "target"}},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 3, "batch_size": 32, "lr": 0.01},
    }
    run = train(recipe, out=tmp_path / "run")
    found = run.baselines
    assert set(found) == set(BASELINES)
    prepared = prepare(run.recipe)
    info = prepared.info
    assert info.target_scale != 1.0  # the network trained on standardized targets
    y_test = prepared.splits.test.y * info.target_scale + info.target_shift
    ss_tot = float(((y_test - y_test.mean()) ** 2).sum())
    for name, values in found.items():
        assert set(values) == _test_keys(run.metrics) | EXTRA
        # original units: the error is of the order of the target's spread (≈ 77), not
        # of the standardized targets' (≈ 1)
        assert target_std / 10 < values["test_rmse"] < target_std * 1.5, name
        assert values["test_mae"] < values["test_rmse"]
        assert values["test_r2"] > 0, name
        # r2 and rmse describe the same predictions in the same units
        implied_r2 = 1 - len(y_test) * values["test_rmse"] ** 2 / ss_tot
        assert values["test_r2"] == pytest.approx(implied_r2, abs=1e-4)
    # the linear baseline is plain Ridge on the same features and the original targets
    from sklearn.linear_model import Ridge

    y_train = prepared.splits.train.y * info.target_scale + info.target_shift
    ridge = Ridge().fit(prepared.splits.train.X, y_train)
    rmse = float(np.sqrt(((ridge.predict(prepared.splits.test.X) - y_test) ** 2).mean()))
    assert found["linear"]["test_rmse"] == pytest.approx(rmse, rel=1e-4)


def test_baselines_none_writes_none(tmp_path):
    run = train(census(baselines="none"), out=tmp_path / "run")
    assert not (tmp_path / "run" / "baselines.json").exists()
    assert run.baselines == {} and run.summary()["baselines"] == {}


def test_builtin_arrays_get_none_under_auto_and_both_when_always(tmp_path, breast_cancer_recipe):
    run = train(breast_cancer_recipe, out=tmp_path / "auto")
    assert not (tmp_path / "auto" / "baselines.json").exists() and run.baselines == {}
    breast_cancer_recipe["train"]["baselines"] = "always"
    run = train(breast_cancer_recipe, out=tmp_path / "always")
    assert set(run.baselines) == set(BASELINES)
    for values in run.baselines.values():
        assert set(values) == _test_keys(run.metrics) | EXTRA  # bce: one logit, same metrics
        assert values["test_accuracy"] > 0.9


def test_which_data_wants_baselines():
    def wants(recipe: dict) -> bool:
        r = load_recipe(recipe)
        return wants_baselines(r, prepare(r, check_finite=False))

    assert wants(census())
    assert wants({"data": {"dataset": "adult"}, "model": "mlp"})  # a shipped table
    assert not wants(census(baselines="none"))
    assert not wants({"data": {"dataset": "digits"}, "model": "mlp"})  # built-in arrays
    assert wants({"data": {"dataset": "digits"}, "model": "mlp", "train": {"baselines": "always"}})
    assert not wants(load_recipe(EXAMPLES / "polarity_textcnn.yaml").to_dict())  # text


def test_index_encoded_categories_and_several_targets(tmp_path):
    r = load_recipe(census())
    r = load_recipe(
        {**r.to_dict(), "data": {**r.to_dict()["data"], "preprocessing": {"encode": "index"}}}
    )
    found = fit_baselines(prepare(r))
    assert all("error" not in v and v["test_accuracy"] > 0.7 for v in found.values())
    # two regression targets (an npy dataset, so only with `always`)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = np.stack([X[:, 0] * 10 + 100, X[:, 1] - 5], axis=1).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    two = load_recipe(
        {
            "data": {
                "dataset": {
                    "name": "npy",
                    "path": str(tmp_path / "x.npy"),
                    "targets": str(tmp_path / "y.npy"),
                }
            },
            "model": "mlp",
            "train": {"baselines": "always"},
        }
    )
    found = fit_baselines(prepare(two))
    assert found["linear"]["test_r2"] > 0.99 and found["hist_gradient_boosting"]["test_r2"] > 0.8


def test_a_failing_baseline_never_fails_the_run(tmp_path, monkeypatch):
    real = baselines_module._build

    def broken(name, prepared):
        if name == "hist_gradient_boosting":
            raise ValueError("boom")
        return real(name, prepared)

    monkeypatch.setattr(baselines_module, "_build", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train(census(), out=tmp_path / "run")
    assert run.status == "completed"
    assert run.baselines["hist_gradient_boosting"] == {"error": "ValueError: boom"}
    assert "test_accuracy" in run.baselines["linear"]
    assert any("baseline hist_gradient_boosting failed" in str(w.message) for w in caught)


def test_cross_validation_reports_the_folds_baselines_as_mean_and_std(tmp_path):
    recipe = census()
    recipe["data"]["cv"] = 2
    recipe["train"]["epochs"] = 1
    run = train(recipe, out=tmp_path / "cv")
    for fold in (0, 1):
        assert (tmp_path / "cv" / f"fold-{fold}" / "baselines.json").is_file()
    hgb = run.baselines["hist_gradient_boosting"]
    assert 0.7 < hgb["test_accuracy"] <= 1 and hgb["test_accuracy_std"] >= 0


def test_train_json_and_table_show_the_baselines(tmp_path):
    path = tmp_path / "census.yaml"
    path.write_text(yaml.safe_dump(census()))
    result = cli("train", str(path), "--out", str(tmp_path / "run"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data["baselines"]) == set(BASELINES)
    assert data["baselines"]["linear"]["test_accuracy"] > 0.7
    table = cli("train", str(path), "--out", str(tmp_path / "run"))  # finished: read back
    assert table.returncode == 0, table.stderr
    rows = [line.split("│")[1].strip() for line in table.stdout.splitlines() if "│" in line]
    assert {"network", "hist_gradient_boosting", "linear"} <= set(rows)
