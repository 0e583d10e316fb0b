"""The doctor judges a network against its baselines and by R², recommends sane learning
rates, and widens every model that has a width."""

from __future__ import annotations

import re

import numpy as np
import pytest

from trainlab.config.loading import load_recipe
from trainlab.diagnose.findings import Code, Finding
from trainlab.diagnose.fit import compare_with_baselines, negative_r2_finding
from trainlab.studies.doctor import (
    _lr_findings,
    doctor,
    lr_advice,
    lr_bounds,
    recommend,
    widened,
)
from trainlab.studies.lr_finder import LRCurve, LRFindResult
from trainlab.tasks import TaskInfo

from ..conftest import EXAMPLES

CENSUS = {
    "dataset": {
        "name": "csv",
        "path": str(EXAMPLES / "data" / "census_sample.csv"),
        "target": "income",
    }
}
INFO = TaskInfo("multiclass", 2, (85,), ["<=50K", ">50K"], features={"kind": "tabular"})


# ----------------------------------------------------------------------- the comparison
def test_a_better_baseline_is_a_warning_quoting_both_numbers():
    metrics = {"test_accuracy": 0.842, "test_loss": 0.4}
    baselines = {
        "hist_gradient_boosting": {"test_accuracy": 0.861, "fit_seconds": 0.3},
        "linear": {"test_accuracy": 0.850, "fit_seconds": 0.01},
    }
    (finding,) = compare_with_baselines(metrics, baselines, test_size=4000, advice="try more")
    assert finding.code == Code.BASELINE_BEATS_MODEL and finding.severity == "warning"
    assert finding.message.startswith("hist_gradient_boosting reaches test accuracy 0.861")
    assert "the network 0.842" in finding.message and "linear 0.850" in finding.message
    assert finding.message.endswith(": try more")
    assert finding.evidence["best"] == "hist_gradient_boosting"
    assert finding.evidence["gap"] == pytest.approx(0.019)


def test_a_gap_within_the_test_splits_noise_is_only_info_and_a_better_network_is_silent():
    baselines = {"hist_gradient_boosting": {"test_accuracy": 0.845}, "linear": {"error": "x"}}
    # 400 test samples: one standard error of 0.84 is 1.8 points
    (finding,) = compare_with_baselines({"test_accuracy": 0.84}, baselines, test_size=400)
    assert finding.severity == "info" and "noise" in finding.message
    assert compare_with_baselines({"test_accuracy": 0.85}, baselines, test_size=400) == []
    assert compare_with_baselines({"test_accuracy": 0.5}, {"linear": {"error": "x"}}) == []
    assert compare_with_baselines({}, baselines) == []  # a diverged run: no test metrics


def test_regression_is_judged_by_r2_with_rmse_in_target_standard_deviations():
    metrics = {"test_r2": 0.10, "test_rmse": 73.0}
    baselines = {
        "hist_gradient_boosting": {"test_r2": 0.22, "test_rmse": 63.0},
        "linear": {"test_r2": 0.33, "test_rmse": 58.7},
    }
    (finding,) = compare_with_baselines(metrics, baselines, target_std=77.0)
    assert finding.severity == "warning"
    assert finding.message.startswith("linear reaches test R² 0.330 (RMSE 0.76 σ")
    assert "the network 0.100 (RMSE 0.95 σ)" in finding.message
    assert finding.evidence["rmse_over_std"]["network"] == pytest.approx(73 / 77)
    # a network worse than the mean is always a warning, however small the gap
    (bad,) = compare_with_baselines(
        {"test_r2": -0.004}, {"linear": {"test_r2": -0.001}}, r2_margin=0.5
    )
    assert bad.severity == "warning" and "worse than predicting the mean" in bad.message
    assert negative_r2_finding({"test_r2": -0.3}).code == Code.UNDERFITTING
    assert negative_r2_finding({"test_r2": 0.3}) is None


def test_the_doctor_says_when_boosting_beats_the_network_on_a_table(tmp_path):
    recipe = {
        "name": "weak_census",
        "data": CENSUS,
        "model": "mlp",  # 128 units by default
        "train": {"epochs": 2, "batch_size": 64, "lr": 1e-5},  # far too little training
    }
    report = doctor(recipe, out=tmp_path, lr_find=False)
    finding = next(f for f in report.findings if f.code == Code.BASELINE_BEATS_MODEL)
    assert finding.severity == "warning"
    match = re.match(r"(\w+) reaches test accuracy ([\d.]+).*the network ([\d.]+)", finding.message)
    assert match is not None, finding.message
    assert float(match.group(2)) > float(match.group(3)) + 0.05
    assert float(match.group(2)) > 0.75  # boosting on the census sample
    assert "train.epochs=4" in finding.message and "model.hidden=[256]" in finding.message
    by_name = {r.name: r for r in report.recommendations}
    assert by_name["longer"].overrides == {"train.epochs": 4}
    assert by_name["wider"].overrides == {"model.hidden": [256]}
    assert not by_name["use_baseline"].applicable
    assert set(report.probe["baselines"]) == {"hist_gradient_boosting", "linear"}


def test_a_negative_test_r2_is_never_no_alarm(tmp_path):
    from sklearn.datasets import load_diabetes

    path = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    recipe = {
        "name": "raw_diabetes",
        "data": {
            "dataset": {"name": "csv", "path": str(path), "target": "target"},
            "preprocessing": {"target_scale": "none"},  # raw targets ≈ 150: R² far below 0
        },
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 3, "batch_size": 32},
    }
    report = doctor(recipe, out=tmp_path / "doctor", lr_find=False)
    assert report.probe["metrics"]["test_r2"] < 0
    assert {"UNDERFITTING", "BASELINE_BEATS_MODEL"} <= set(report.codes)
    finding = next(f for f in report.findings if f.code == Code.BASELINE_BEATS_MODEL)
    assert "worse than predicting the mean" in finding.message and " σ" in finding.message
    assert finding.evidence["target_std"] == pytest.approx(77, rel=0.1)  # original units


# ---------------------------------------------------------------------- learning rates
def _result(minimum_at: float, lrs: np.ndarray, steepest: float, diverged=None) -> LRFindResult:
    """A range test whose loss was lowest at `minimum_at` (two identical seeds)."""
    i_min = int(np.argmin(np.abs(lrs - minimum_at)))
    losses = [2.0 - i / len(lrs) if i <= i_min else 1.5 for i in range(len(lrs))]
    curves = [
        LRCurve(seed, list(lrs), losses, steepest, float(lrs[i_min]), diverged) for seed in (0, 1)
    ]
    result = LRFindResult(1e-5, curves)
    result.suggestions = {
        "steepest": {"geomean": steepest},
        "minimum_div_10": {"geomean": float(lrs[i_min]) / 10},
        "minimum": {"geomean": float(lrs[i_min])},
    }
    return result


def test_a_minimum_at_the_end_of_the_sweep_never_becomes_lr_1():
    """The loss still falling at lr 10 put 'minimum / 10' at 1.0: the sweep was too narrow."""
    lrs = np.geomspace(1e-7, 10, 100)
    result = _result(10.0, lrs, steepest=0.3)
    advice = lr_advice(result, "adam")
    assert advice.narrow and "too narrow" in advice.note and "--end" in advice.note
    assert advice.value == pytest.approx(1e-2)  # steepest 0.3, capped for adam
    base = load_recipe(
        {"data": CENSUS, "model": "mlp", "train": {"lr": 1e-5, "optimizer": "adam"}}
    ).to_dict()
    (finding,) = _lr_findings(1e-5, result, "adam")
    assert finding.code == Code.LR_TOO_LOW and "too narrow" in finding.message
    (higher,) = [r for r in recommend([finding], base, INFO, result) if r.name == "higher_lr"]
    assert higher.applicable and higher.overrides["train.lr"] <= 1e-2
    assert "too narrow" in higher.note


def test_suggestions_are_clamped_to_the_optimizers_sane_range():
    assert lr_bounds("adam") == pytest.approx((1e-6, 1e-2))
    assert lr_bounds("sgd") == pytest.approx((1e-4, 1.0))
    lrs = np.geomspace(1e-7, 10, 100)
    inside = _result(1.0, lrs, steepest=0.2)  # minimum well inside the sweep
    sgd = lr_advice(inside, "sgd")
    assert sgd.value == pytest.approx(inside.suggestion("minimum_div_10")) and not sgd.note
    assert 0.09 < sgd.value < 0.12
    capped = lr_advice(inside, "adam")
    assert capped.value == pytest.approx(1e-2) and "largest sane rate for adam" in capped.note
    # a recipe already at adam's ceiling gets no 'higher' advice, a sgd one at 10 a sane one
    finding = Finding(Code.LR_TOO_LOW, "warning", "low")
    at_cap = {"model": {"name": "mlp"}, "train": {"lr": 1e-2, "optimizer": {"name": "adam"}}}
    (higher,) = recommend([finding], {**at_cap, "data": {}}, INFO, inside)
    assert not higher.applicable and "already at the top" in higher.note
    base = load_recipe({"data": CENSUS, "model": "mlp", "train": {"lr": 10.0, "optimizer": "sgd"}})
    diverged = Finding(Code.DIVERGED, "error", "nan")
    (lower,) = [
        r for r in recommend([diverged], base.to_dict(), INFO, inside) if r.name == "lower_lr"
    ]
    assert lower.overrides["train.lr"] == pytest.approx(sgd.value, rel=0.01)


def test_adam_at_its_usual_rate_is_not_called_too_low_by_an_edge_sweep():
    result = _result(10.0, np.geomspace(1e-7, 10, 100), steepest=0.5)
    assert _lr_findings(1e-3, result, "adam") == []


# ------------------------------------------------------------------------------- width
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"name": "mlp"}, {"model.hidden": [256]}),  # the default 128 units
        ({"name": "mlp", "hidden": [128]}, {"model.hidden": [256]}),
        ({"name": "wide_deep"}, {"model.hidden": [128, 64]}),
        ({"name": "cnn", "channels": [8]}, {"model.channels": [16], "model.dense": [128]}),
        ({"name": "text_rnn"}, {"model.hidden": 128}),  # an int; its empty `dense` stays
        ({"name": "text_cnn"}, {"model.filters": 200}),
        ({"name": "resnet"}, {"model.width": 2.0}),
        (
            {"name": "vgg_small"},
            {"model.stages": [[64, 64], [128, 128], [256, 256]], "model.dense": [256]},
        ),
    ],
)
def test_wider_doubles_every_models_width(model, expected):
    assert widened(model) == expected


def test_a_default_mlp_has_a_width_to_double():
    base = load_recipe({"data": CENSUS, "model": "mlp"}).to_dict()
    recs = recommend([Finding(Code.UNDERFITTING, "warning", "bias")], base, INFO)
    wider = next(r for r in recs if r.name == "wider")
    assert wider.applicable, wider.note
    assert wider.overrides == {"model.hidden": [256]}
