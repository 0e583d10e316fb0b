"""Ablation studies: effects detected with the right sign, no-ops not, resume, workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from trainlab.catalog import TECHNIQUES
from trainlab.engine import Technique
from trainlab.errors import RecipeError, RunError
from trainlab.params import StrictModel
from trainlab.stats import paired_difference, summarize, verdict
from trainlab.studies.ablate import ablate, parse_variant, split_items


class ShiftParams(StrictModel):
    amount: float = 0.05


class ShiftValAccuracy(Technique):
    """Test-only: adds a fixed amount to the validation accuracy — a known effect."""

    def __init__(self, amount: float) -> None:
        self.amount = amount

    def on_eval_end(self, state) -> None:
        if state.eval_split == "val":
            state.eval_metrics["val_accuracy"] += self.amount


class NoOp(Technique):
    """Test-only: changes nothing."""


@pytest.fixture
def test_techniques():
    TECHNIQUES.add(
        "shift_metric",
        lambda p: ShiftValAccuracy(p.amount),
        description="test only",
        params=ShiftParams,
    )
    TECHNIQUES.add("noop", lambda p: NoOp(), description="test only")
    yield
    TECHNIQUES.remove("shift_metric")
    TECHNIQUES.remove("noop")


def test_known_effect_is_significant_with_the_right_sign_and_noop_is_not(
    digits_recipe, runs_root, test_techniques
):
    digits_recipe["train"]["epochs"] = 2
    result = ablate(
        digits_recipe,
        ["shift_metric", "noop", "shift_down"],
        variants=[parse_variant("shift_down:train.lr=0.0000001")],
        seeds=3,
        study="known",
    )
    rows = {r["technique"]: r for r in result.rows}
    shift = rows["shift_metric"]
    assert shift["verdict"] == "helps"
    assert shift["effect"]["mean"] == pytest.approx(0.05, abs=1e-9)
    assert shift["effect"]["p_value"] < 0.01
    noop = rows["noop"]
    assert noop["verdict"] == "no significant effect"
    assert noop["effect"]["mean"] == 0.0
    # the same seed gives the same baseline in every variant: the no-op arm equals it exactly
    assert result.arms["noop"]["values"] == result.baseline["values"]
    # a learning rate of 1e-7 barely trains: a large negative effect
    assert rows["shift_down"]["verdict"] == "hurts"
    assert rows["shift_down"]["effect"]["ci_high"] < 0
    assert [r["technique"] for r in result.rows][0] == "shift_metric"  # ranked best first
    saved = json.loads((result.study_dir / "results.json").read_text())
    assert saved["effects"][0]["technique"] == "shift_metric"


def test_rerunning_reuses_every_finished_run(digits_recipe, runs_root):
    digits_recipe["train"]["epochs"] = 1
    first = ablate(digits_recipe, ["cosine"], seeds=2, study="again")
    assert first.runs_trained == 4 and first.runs_reused == 0
    again = ablate(digits_recipe, ["cosine"], seeds=2, study="again")
    assert again.runs_trained == 0 and again.runs_reused == 4
    assert again.rows == first.rows
    more = ablate(digits_recipe, ["cosine"], seeds=3, study="again")  # adding a seed
    assert more.runs_trained == 2 and more.runs_reused == 4
    with pytest.raises(RunError, match="different recipe, mode or technique"):
        ablate(digits_recipe, ["dropout"], seeds=2, study="again")


def test_killed_study_loses_and_reruns_nothing(tmp_path, digits_recipe, runs_root):
    digits_recipe["train"]["epochs"] = 2
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(digits_recipe))
    args = [
        sys.executable,
        "-m",
        "trainlab.cli",
        "ablate",
        str(path),
        "-t",
        "dropout,cosine",
        "--seeds",
        "2",
        "--study",
        "killed",
        "--quiet",
    ]
    proc = subprocess.Popen(
        args,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    study = runs_root / "studies" / "killed"
    deadline = time.time() + 180
    finished = []
    while time.time() < deadline and len(finished) < 3:
        finished = [
            p.parent
            for p in study.glob("*/seed-*/run.json")
            if json.loads(p.read_text() or "{}").get("status") == "completed"
        ]
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= len(finished) < 6, "the kill should land mid-study"
    stamps = {p: (p / "model.safetensors").stat().st_mtime_ns for p in finished}
    result = ablate(path, ["dropout", "cosine"], seeds=2, study="killed")
    assert result.runs_reused >= 3 and result.runs_reused + result.runs_trained == 6
    for p, stamp in stamps.items():
        assert (p / "model.safetensors").stat().st_mtime_ns == stamp  # not retrained
    reference = ablate(path, ["dropout", "cosine"], seeds=2, study="reference")
    assert [r["effect"] for r in result.rows] == [r["effect"] for r in reference.rows]


def test_two_workers_give_the_same_numbers_as_one(digits_recipe, runs_root):
    digits_recipe["train"]["epochs"] = 1
    one = ablate(digits_recipe, ["cosine", "dropout"], seeds=2, study="w1")
    two = ablate(digits_recipe, ["cosine", "dropout"], seeds=2, study="w2", workers=2)
    assert [r["effect"] for r in one.rows] == [r["effect"] for r in two.rows]


def test_modes_and_their_effects(digits_recipe, runs_root, test_techniques):
    digits_recipe["train"]["epochs"] = 1
    loo = ablate(
        digits_recipe, ["shift_metric", "noop"], mode="leave-one-out", seeds=2, study="loo"
    )
    assert {r["technique"]: r["effect"]["mean"] for r in loo.rows}["shift_metric"] == pytest.approx(
        0.05
    )
    fac = ablate(digits_recipe, ["shift_metric", "noop"], mode="factorial", seeds=2, study="fac")
    assert set(fac.arms) == {"shift_metric", "noop", "shift_metric+noop"}
    effects = {r["technique"]: r["effect"]["mean"] for r in fac.rows}
    assert effects["shift_metric"] == pytest.approx(0.05) and effects["noop"] == 0.0
    with pytest.raises(RecipeError, match="limit"):
        ablate(
            digits_recipe,
            ["shift_metric", "noop", "cosine", "dropout", "batchnorm"],
            mode="factorial",
            seeds=3,
            study="big",
        )


def test_bad_technique_names_are_clear_errors(digits_recipe):
    with pytest.raises(RecipeError, match="did you mean 'cosine'"):
        ablate(digits_recipe, ["cosin"], seeds=2)
    with pytest.raises(RecipeError, match="at least 2"):
        ablate(digits_recipe, ["cosine"], seeds=1)
    with pytest.raises(RecipeError, match="NAME:key=value"):
        parse_variant("nocolon")
    assert split_items("a, b(x=1,y=2) ,c") == ["a", "b(x=1,y=2)", "c"]


def test_paired_statistics_match_their_formulas():
    s = summarize([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.std == 1.0
    assert s.ci_high - s.mean == pytest.approx(4.302653 / 3**0.5, rel=1e-5)  # t(0.975, 2)
    d = paired_difference([1.1, 2.3, 2.9, 4.2], [1.0, 2.0, 3.0, 4.0])
    from scipy import stats as sps

    assert d.p_value == pytest.approx(sps.ttest_rel([1.1, 2.3, 2.9, 4.2], [1, 2, 3, 4]).pvalue)
    assert d.p_value_permutation == pytest.approx(6 / 16)
    assert verdict(d, higher_is_better=True) == "no significant effect"
    assert verdict(paired_difference([2, 3, 4], [1, 2, 3.1]), True) == "helps"
    assert verdict(paired_difference([0.5, 0.6, 0.7], [1, 1.1, 1.3]), False) == "helps"
