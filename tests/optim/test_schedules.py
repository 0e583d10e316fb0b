"""Schedules give the exact lr of their closed form at every t, warm-up, and resume."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable

import pytest
import torch

from trainlab.errors import RecipeError, RunError
from trainlab.optim import SCHEDULES, LRSchedule, build_schedule, schedule_factor
from trainlab.optim.schedules import CosineParams

LR = 0.1
EPOCHS = 10
STEPS = 4  # steps per epoch


def _optimizer(lr: float = LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def _epoch_lrs(schedule: LRSchedule, metrics: list[float] | None = None) -> list[float]:
    """lr in effect during each epoch 0..EPOCHS-1, then after the last one."""
    lrs = [schedule.lr]
    for epoch in range(EPOCHS):
        schedule.step_epoch(None if metrics is None else metrics[epoch])
        lrs.append(schedule.lr)
    return lrs


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


def _one_cycle(t: int, total: int) -> float:
    # pct_start 0.3, div 25, final_div 1e4: peak at t = 0.3·total − 1
    up = 0.3 * total - 1
    if t <= up:
        return _cos_anneal(1 / 25, 1.0, t / up)
    return _cos_anneal(1.0, 1 / 25 / 1e4, (t - up) / (total - 1 - up))


# name → (knobs, closed-form factor(t, total)), written independently of the module.
CLOSED_FORMS: dict[str, tuple[dict, Callable[[int, int], float]]] = {
    "constant": ({}, lambda t, n: 1.0),
    "piecewise": (
        {"milestones": [3, 7], "values": [1.0, 0.3, 0.05]},
        lambda t, n: 1.0 if t < 3 else 0.3 if t < 7 else 0.05,
    ),
    "exponential": ({"gamma": 0.8}, lambda t, n: 0.8**t),
    "natural_exp": ({"k": 0.3}, lambda t, n: math.exp(-0.3 * t)),
    "linear": ({"end_factor": 0.1}, lambda t, n: 1 - 0.9 * t / n),
    "cosine": (
        {"min_factor": 0.01},
        lambda t, n: 0.01 + 0.99 * (1 + math.cos(math.pi * t / n)) / 2,
    ),
    "one_cycle": ({}, _one_cycle),
    "plateau": ({"patience": 1}, lambda t, n: 1.0),  # metric always improving
}
IMPROVING = [1.0 / (e + 1) for e in range(EPOCHS)]


def test_every_schedule_has_a_closed_form_test() -> None:
    assert set(CLOSED_FORMS) == set(SCHEDULES.names())


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_epoch_lrs_equal_the_closed_form(name) -> None:
    knobs, formula = CLOSED_FORMS[name]
    schedule = build_schedule(_optimizer(), name, knobs, epochs=EPOCHS, steps_per_epoch=STEPS)
    assert schedule.total == EPOCHS
    lrs = _epoch_lrs(schedule, IMPROVING)
    # t = 0 is in effect from construction, so the first update uses factor(0)
    assert lrs[0] == pytest.approx(LR * formula(0, EPOCHS), rel=1e-12)
    for t in range(EPOCHS):
        assert lrs[t] == pytest.approx(LR * formula(t, EPOCHS), rel=1e-12), t
        assert schedule_factor(name, t, EPOCHS, knobs) == pytest.approx(formula(t, EPOCHS))


@pytest.mark.parametrize("name", sorted(set(CLOSED_FORMS) - {"plateau", "one_cycle"}))
def test_warmup_ramps_from_start_factor_to_the_schedule_value(name) -> None:
    knobs, formula = CLOSED_FORMS[name]
    knobs = {**knobs, "warmup": 3, "warmup_start_factor": 0.1}
    schedule = build_schedule(_optimizer(), name, knobs, epochs=EPOCHS, steps_per_epoch=STEPS)
    lrs = _epoch_lrs(schedule)
    target = formula(3, EPOCHS)  # the schedule's value where warm-up ends
    for t in range(3):
        assert lrs[t] == pytest.approx(LR * (0.1 + (target - 0.1) * (t + 1) / 4), rel=1e-12)
    for t in range(3, EPOCHS):
        assert lrs[t] == pytest.approx(LR * formula(t, EPOCHS), rel=1e-12)


def test_default_warmup_never_uses_lr_zero() -> None:
    schedule = build_schedule(_optimizer(), "constant", {"warmup": 3}, EPOCHS, STEPS)
    assert _epoch_lrs(schedule)[:5] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])


def test_cosine_exact_values_with_step_interval_and_warmup() -> None:
    knobs = {"interval": "step", "warmup": 4, "min_factor": 0.0}
    schedule = build_schedule(_optimizer(), "cosine", knobs, epochs=EPOCHS, steps_per_epoch=STEPS)
    total = EPOCHS * STEPS
    lrs = [schedule.lr]
    for _ in range(total):
        schedule.step_batch()
        lrs.append(schedule.lr)
    v4 = (1 + math.cos(math.pi * 4 / 40)) / 2
    assert lrs[0] == pytest.approx(LR * v4 / 5)  # warm-up start
    assert lrs[2] == pytest.approx(LR * v4 * 3 / 5)  # during warm-up
    assert lrs[20] == pytest.approx(LR * 0.5)  # half-way: cos(π/2) = 0
    assert lrs[39] == pytest.approx(LR * (1 + math.cos(math.pi * 39 / 40)) / 2)  # last step
    assert lrs[40] == pytest.approx(0.0, abs=1e-15)  # floor reached after the run
    assert all(b <= a for a, b in zip(lrs[4:], lrs[5:], strict=False))


def test_natural_exp_exact_values() -> None:
    schedule = build_schedule(_optimizer(), "natural_exp", {"k": 0.5}, EPOCHS, STEPS)
    lrs = _epoch_lrs(schedule)
    assert lrs[0] == LR
    assert lrs[5] == pytest.approx(LR * math.exp(-2.5), rel=1e-12)
    assert lrs[9] == pytest.approx(LR * math.exp(-4.5), rel=1e-12)


def test_piecewise_values_at_boundaries() -> None:
    knobs = {"milestones": [3, 6], "values": [1.0, 0.1, 0.01]}
    schedule = build_schedule(_optimizer(), "piecewise", knobs, EPOCHS, STEPS)
    lrs = _epoch_lrs(schedule)
    assert lrs[2] == pytest.approx(0.1)
    assert lrs[3] == pytest.approx(0.01)  # the milestone epoch already uses the new value
    assert lrs[5] == pytest.approx(0.01)
    assert lrs[6] == pytest.approx(0.001)
    assert lrs[9] == pytest.approx(0.001)


def test_linear_reaches_end_factor_after_the_run() -> None:
    schedule = build_schedule(_optimizer(), "linear", {"end_factor": 0.2}, EPOCHS, STEPS)
    lrs = _epoch_lrs(schedule)
    assert lrs[5] == pytest.approx(LR * 0.6)
    assert lrs[9] == pytest.approx(LR * (1 - 0.8 * 9 / 10))
    assert lrs[10] == pytest.approx(LR * 0.2)


def test_one_cycle_peaks_at_the_recipe_lr_and_ends_at_its_floor() -> None:
    schedule = build_schedule(
        _optimizer(),
        "one_cycle",
        {"interval": "step", "pct_start": 0.3},
        epochs=5,
        steps_per_epoch=4,
    )
    lrs = [schedule.lr]
    for _ in range(19):
        schedule.step_batch()
        lrs.append(schedule.lr)
    assert lrs[0] == pytest.approx(LR / 25)
    assert lrs[5] == pytest.approx(LR)  # 0.3·20 − 1 = 5
    assert max(lrs) == pytest.approx(LR)
    assert lrs[19] == pytest.approx(LR / 25 / 1e4)


@pytest.mark.parametrize(
    ("name", "knobs", "reference"),
    [
        (
            "cosine",
            {"min_factor": 0.1},
            lambda o, n: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=n, eta_min=0.1 * LR),
        ),
        (
            "exponential",
            {"gamma": 0.9},
            lambda o, n: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9),
        ),
        (
            "linear",
            {"end_factor": 0.25},
            lambda o, n: torch.optim.lr_scheduler.LinearLR(
                o, start_factor=1.0, end_factor=0.25, total_iters=n
            ),
        ),
        (
            "piecewise",
            {"milestones": [10, 25], "values": [1.0, 0.5, 0.25]},
            lambda o, n: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[10, 25], gamma=0.5),
        ),
        (
            "one_cycle",
            {"pct_start": 0.25, "div_factor": 10, "final_div_factor": 100, "anneal": "linear"},
            lambda o, n: torch.optim.lr_scheduler.OneCycleLR(
                o,
                max_lr=LR,
                total_steps=n,
                pct_start=0.25,
                div_factor=10,
                final_div_factor=100,
                anneal_strategy="linear",
                cycle_momentum=False,
            ),
        ),
    ],
)
def test_step_interval_matches_torch_schedulers(name, knobs, reference) -> None:
    ours = build_schedule(_optimizer(), name, {**knobs, "interval": "step"}, EPOCHS, STEPS)
    theirs_opt = _optimizer()
    theirs = reference(theirs_opt, EPOCHS * STEPS)
    for step in range(EPOCHS * STEPS):
        assert ours.lr == pytest.approx(theirs_opt.param_groups[0]["lr"], rel=1e-9), step
        theirs_opt.step()
        theirs.step()
        ours.step_batch()


def test_step_interval_ignores_epochs_and_epoch_interval_ignores_steps() -> None:
    per_step = build_schedule(_optimizer(), "exponential", {"gamma": 0.5, "interval": "step"}, 3, 2)
    per_epoch = build_schedule(_optimizer(), "exponential", {"gamma": 0.5}, 3, 2)
    assert per_step.total == 6 and per_epoch.total == 3
    for schedule in (per_step, per_epoch):
        schedule.step_batch()
        schedule.step_batch()
        schedule.step_epoch(0.3)
    assert per_step.t == 2 and per_step.lr == pytest.approx(LR * 0.25)
    assert per_epoch.t == 1 and per_epoch.lr == pytest.approx(LR * 0.5)


def test_param_groups_keep_their_ratio() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    schedule = build_schedule(opt, "exponential", {"gamma": 0.5}, EPOCHS, STEPS)
    schedule.step_epoch(None)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])


PLATEAU = {"factor": 0.5, "patience": 2, "min_factor": 0.2, "threshold": 0.0}


def test_plateau_reduces_after_patience_bad_epochs_and_respects_min_factor() -> None:
    schedule = build_schedule(_optimizer(), "plateau", PLATEAU, epochs=20, steps_per_epoch=1)
    metrics = [1.0, 0.9] + [0.95] * 12
    lrs = [schedule.lr]
    for m in metrics:
        schedule.step_epoch(m)
        lrs.append(schedule.lr)
    # epochs 2, 3 are tolerated (patience 2); the 3rd bad epoch (4) halves the lr for
    # epoch 5; three more bad epochs → 0.25; three more → max(0.125, 0.2) = 0.2
    expected = [LR] * 5 + [LR * 0.5] * 3 + [LR * 0.25] * 3 + [LR * 0.2] * 4
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_plateau_threshold_and_mode_max() -> None:
    knobs = {**PLATEAU, "threshold": 0.1, "patience": 0, "mode": "max"}
    schedule = build_schedule(_optimizer(), "plateau", knobs, epochs=20, steps_per_epoch=1)
    schedule.step_epoch(0.50)  # first value: the best so far
    schedule.step_epoch(0.60)  # > 0.5·1.1: improves
    assert schedule.lr == pytest.approx(LR)
    schedule.step_epoch(0.65)  # < 0.6·1.1 = 0.66: not enough, patience 0 → halve
    assert schedule.lr == pytest.approx(LR * 0.5)


def test_plateau_ignores_warmup_epochs() -> None:
    knobs = {**PLATEAU, "patience": 0, "warmup": 2}
    schedule = build_schedule(_optimizer(), "plateau", knobs, epochs=20, steps_per_epoch=1)
    lrs = [schedule.lr]
    for m in [1.0, 2.0, 3.0, 4.0]:  # worsening: only epochs ≥ 2 count
        schedule.step_epoch(m)
        lrs.append(schedule.lr)
    assert lrs == pytest.approx([LR / 3, 2 * LR / 3, LR, LR, LR * 0.5])


def test_plateau_needs_epoch_interval_and_a_metric() -> None:
    with pytest.raises(RecipeError, match="train.schedule: plateau .* set interval: epoch"):
        build_schedule(_optimizer(), "plateau", {"interval": "step"}, EPOCHS, STEPS)
    schedule = build_schedule(_optimizer(), "plateau", {}, EPOCHS, STEPS)
    with pytest.raises(RecipeError, match="needs a validation metric"):
        schedule.step_epoch(None)


def _roundtrip(state: dict) -> dict:
    """Through JSON and through torch.save / torch.load(weights_only=True)."""
    state = json.loads(json.dumps(state))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_state_dict_roundtrip_resumes_identically(name) -> None:
    knobs = dict(CLOSED_FORMS[name][0])
    if name != "plateau":
        knobs["interval"] = "step"
    if name == "piecewise":
        knobs["milestones"] = [10, 30]  # in steps: one before, one after the resume point
    metrics = [1.0, 0.8, 0.9, 0.9, 0.85, 0.9, 0.9, 0.95, 0.7, 0.9]
    first_opt = _optimizer()
    first = build_schedule(first_opt, name, knobs, EPOCHS, STEPS)

    def run_epoch(schedule: LRSchedule, epoch: int) -> list[float]:
        lrs = []
        for _ in range(STEPS):
            lrs.append(schedule.lr)
            schedule.step_batch()
        schedule.step_epoch(metrics[epoch])
        return lrs

    for epoch in range(4):
        run_epoch(first, epoch)
    saved_sched, saved_opt = _roundtrip(first.state_dict()), first_opt.state_dict()
    rest_first = [lr for epoch in range(4, EPOCHS) for lr in run_epoch(first, epoch)]

    second_opt = _optimizer()
    second = build_schedule(second_opt, name, knobs, EPOCHS, STEPS)
    second.load_state_dict(saved_sched)
    second_opt.load_state_dict(saved_opt)
    rest_second = [lr for epoch in range(4, EPOCHS) for lr in run_epoch(second, epoch)]
    assert rest_second == rest_first  # exactly, not approximately
    assert len(set(rest_first)) > 1 or name in ("constant",)


def test_state_dict_is_plain_python() -> None:
    schedule = build_schedule(_optimizer(), "plateau", PLATEAU, EPOCHS, STEPS)
    schedule.step_epoch(1.0)
    state = schedule.state_dict()
    assert state == {
        "name": "plateau",
        "interval": "epoch",
        "total": EPOCHS,
        "t": 1,
        "base_lrs": [LR],
        "best": 1.0,
        "bad_epochs": 0,
        "multiplier": 1.0,
    }


def test_loading_another_schedules_state_is_a_run_error() -> None:
    cosine = build_schedule(_optimizer(), "cosine", {}, EPOCHS, STEPS)
    linear = build_schedule(_optimizer(), "linear", {}, EPOCHS, STEPS)
    with pytest.raises(RunError, match="'cosine' but the recipe gives 'linear'"):
        linear.load_state_dict(cosine.state_dict())
    longer = build_schedule(_optimizer(), "cosine", {}, EPOCHS + 5, STEPS)
    with pytest.raises(RunError, match="total"):
        longer.load_state_dict(cosine.state_dict())


@pytest.mark.parametrize(
    ("name", "knobs", "expected"),
    [
        ("cosine", {"warmup": EPOCHS}, "train.schedule.warmup: 10 epochs of warm-up"),
        ("cosine", {"interval": "batch"}, "train.schedule.interval"),
        ("cosine", {"warmpu": 2}, "did you mean 'warmup'"),
        ("cosine", {"min_factor": 2.0}, "train.schedule.min_factor"),
        ("piecewise", {"milestones": [3], "values": [1.0]}, "values needs one more entry"),
        ("piecewise", {"milestones": [5, 3], "values": [1, 1, 1]}, "strictly increasing"),
        ("piecewise", {"values": [1.0]}, "train.schedule.milestones: Field required"),
        ("one_cycle", {"warmup": 2}, "one_cycle warms up by itself"),
        ("exponential", {"gamma": 0}, "train.schedule.gamma"),
        ("cosin", {}, "unknown schedule 'cosin'; did you mean 'cosine'"),
    ],
)
def test_invalid_schedule_recipe_is_a_recipe_error(name, knobs, expected) -> None:
    with pytest.raises(RecipeError, match=expected):
        build_schedule(_optimizer(), name, knobs, EPOCHS, STEPS)


def test_factor_is_pure_and_clamped_after_the_run() -> None:
    params = CosineParams(min_factor=0.1)
    assert schedule_factor("cosine", 3, 10, params) == schedule_factor("cosine", 3, 10, params)
    assert schedule_factor("cosine", 10, 10, params) == pytest.approx(0.1)
    assert schedule_factor("cosine", 25, 10, params) == pytest.approx(0.1)
    assert schedule_factor("linear", 99, 10, {"end_factor": 0.5}) == pytest.approx(0.5)
    assert schedule_factor("one_cycle", 99, 10, {}) == pytest.approx(1 / 25 / 1e4)
