"""The LR range test over seeds: curves, suggestions, spread, plot."""

from __future__ import annotations

import json
import math

from trainlab.studies.lr_finder import lr_find


def test_lr_find_on_digits_over_three_seeds(tmp_path, healthy_recipe):
    result = lr_find(healthy_recipe, seeds=3, steps=60, out=tmp_path)
    assert [c.seed for c in result.curves] == [0, 1, 2]
    assert result.informative
    for c in result.curves:
        assert c.lrs[0] == 1e-7
        assert all(b > a for a, b in zip(c.lrs, c.lrs[1:], strict=False))  # exponential ramp
        assert c.losses[0] > 2.0  # ln(10) = 2.30 at the start: an untrained 10-class net
        assert min(c.losses) < 0.85 * c.losses[0]  # seeds 0-5: 0.72-0.77 of the start
        assert c.minimum is not None and 1e-4 < c.minimum < 10
        assert c.steepest is not None and c.steepest <= c.minimum
    steep = result.suggestions["steepest"]
    assert len(steep["values"]) == 3
    assert steep["min"] <= steep["geomean"] <= steep["max"]
    assert steep["spread"] == steep["max"] / steep["min"] >= 1
    div10 = result.suggestions["minimum_div_10"]
    assert math.isclose(div10["geomean"], result.suggestions["minimum"]["geomean"] / 10)
    saved = json.loads((tmp_path / "lr_find.json").read_text())
    assert saved["suggestions"]["steepest"]["geomean"] == steep["geomean"]
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000


def test_lr_find_is_deterministic_per_seed(healthy_recipe):
    a = lr_find(healthy_recipe, seeds=1, steps=30)
    b = lr_find(healthy_recipe, seeds=1, steps=30)
    assert a.curves[0].losses == b.curves[0].losses


def test_lr_find_flat_curve_is_not_informative(healthy_recipe):
    healthy_recipe["model"].update(init="zeros")  # every unit identical: a dead start
    healthy_recipe["model"]["activation"] = "relu"
    result = lr_find(healthy_recipe, seeds=2, steps=20, end=1e-3)
    assert not result.informative
    assert result.suggestion("steepest") is None
