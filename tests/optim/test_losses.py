"""Losses equal their formulas, handle head/target shapes, and reject bad recipes."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_iris
from torch import nn

from trainlab.errors import RecipeError
from trainlab.optim import LOSSES, build_loss, build_optimizer

OUT = torch.tensor([1.0, 2.0, 3.0, 4.0])
TGT = torch.tensor([1.5, 2.0, 1.0, 8.0])  # errors: 0.5, 0, -2, 4


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny full-batch problems run fastest on one thread, and stay fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_loss_declares_its_target_kind() -> None:
    kinds = {e.name: e.metadata["target"] for e in LOSSES}
    assert kinds == {
        "mse": "regression",
        "mae": "regression",
        "huber": "regression",
        "smooth_l1": "regression",
        "bce": "binary",
        "cross_entropy": "multiclass",
    }


def test_mae_is_mean_absolute_error() -> None:
    assert build_loss("mae", {})(OUT, TGT).item() == pytest.approx((0.5 + 0 + 2 + 4) / 4)


def test_mse_is_mean_squared_error() -> None:
    assert build_loss("mse", {})(OUT, TGT).item() == pytest.approx((0.25 + 0 + 4 + 16) / 4)


def test_huber_is_quadratic_then_linear() -> None:
    # delta 1: 0.5·0.5² ; 0 ; 1·(2 − 0.5) ; 1·(4 − 0.5)
    expected = (0.125 + 0 + 1.5 + 3.5) / 4
    assert build_loss("huber", {})(OUT, TGT).item() == pytest.approx(expected)
    # delta 3: 0.125 ; 0 ; 0.5·4 ; 3·(4 − 1.5)
    expected = (0.125 + 0 + 2.0 + 7.5) / 4
    assert build_loss("huber", {"delta": 3.0})(OUT, TGT).item() == pytest.approx(expected)


def test_smooth_l1_is_huber_over_beta() -> None:
    # beta 2: 0.5·e²/2 below 2, |e| − 1 above → 0.0625 ; 0 ; 1.0 ; 3.0
    expected = (0.0625 + 0 + 1.0 + 3.0) / 4
    assert build_loss("smooth_l1", {"beta": 2.0})(OUT, TGT).item() == pytest.approx(expected)


TORCH_EQUIVALENT = {
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": F.huber_loss,
    "smooth_l1": F.smooth_l1_loss,
}


@pytest.mark.parametrize("name", sorted(TORCH_EQUIVALENT))
def test_regression_losses_never_broadcast_n1_against_n(name) -> None:
    loss_fn = build_loss(name, {})
    flat = loss_fn(OUT, TGT).item()
    assert loss_fn(OUT.unsqueeze(1), TGT).item() == pytest.approx(flat)
    assert loss_fn(OUT, TGT.unsqueeze(1)).item() == pytest.approx(flat)
    # torch's own function broadcasts (4, 1) against (4,) to (4, 4): a different number
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        broadcast = TORCH_EQUIVALENT[name](OUT.unsqueeze(1), TGT).item()
    assert broadcast != pytest.approx(flat)
    with pytest.raises(RecipeError, match=r"outputs of shape \(4, 3\) and targets of shape"):
        loss_fn(torch.zeros(4, 3), TGT)
    with pytest.raises(RecipeError, match="train.loss"):
        loss_fn(torch.zeros(4), torch.zeros(2, 2))


def test_regression_accepts_integer_and_multi_column_targets() -> None:
    loss_fn = build_loss("mae", {})
    assert loss_fn(OUT, torch.tensor([1, 2, 3, 4])).item() == 0.0
    out = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert loss_fn(out, torch.tensor([[2.0, 2.0], [3.0, 0.0]])).item() == pytest.approx(5 / 4)


LOGITS = torch.tensor([2.0, -1.0, 0.5, 0.0])
LABELS = torch.tensor([1, 0, 0, 1])


def _bce_by_hand(z: torch.Tensor, y: torch.Tensor, pos_weight: float = 1.0) -> float:
    terms = []
    for zi, yi in zip(z.tolist(), y.tolist(), strict=True):
        p = 1 / (1 + math.exp(-zi))
        terms.append(-(pos_weight * yi * math.log(p) + (1 - yi) * math.log(1 - p)))
    return sum(terms) / len(terms)


def test_bce_is_the_formula_for_one_logit_and_integer_targets() -> None:
    loss_fn = build_loss("bce", {})
    expected = _bce_by_hand(LOGITS, LABELS)
    assert loss_fn(LOGITS, LABELS).item() == pytest.approx(expected)
    assert loss_fn(LOGITS.unsqueeze(1), LABELS).item() == pytest.approx(expected)
    assert loss_fn(LOGITS.unsqueeze(1), LABELS.unsqueeze(1)).item() == pytest.approx(expected)
    assert loss_fn(LOGITS, LABELS.double()).item() == pytest.approx(expected)


def test_bce_pos_weight_scales_the_positive_term() -> None:
    loss_fn = build_loss("bce", {"pos_weight": 3.0})
    assert loss_fn(LOGITS, LABELS).item() == pytest.approx(_bce_by_hand(LOGITS, LABELS, 3.0))


def test_bce_refuses_two_logits() -> None:
    with pytest.raises(RecipeError, match="use cross_entropy"):
        build_loss("bce", {})(torch.zeros(4, 2), LABELS)


CE_LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0]])
CE_TARGETS = torch.tensor([0, 2, 1])


def _neg_log_softmax(row: list[float]) -> list[float]:
    log_z = math.log(sum(math.exp(v) for v in row))
    return [log_z - v for v in row]


def test_label_smoothed_cross_entropy_equals_its_formula() -> None:
    eps = 0.2
    loss_fn = build_loss("cross_entropy", {"label_smoothing": eps}, num_classes=3)
    per_sample = []
    for row, y in zip(CE_LOGITS.tolist(), CE_TARGETS.tolist(), strict=True):
        nll = _neg_log_softmax(row)
        per_sample.append((1 - eps) * nll[y] + eps * sum(nll) / len(nll))
    expected = sum(per_sample) / len(per_sample)
    assert loss_fn(CE_LOGITS, CE_TARGETS).item() == pytest.approx(expected, rel=1e-6)
    plain = build_loss("cross_entropy", {})(CE_LOGITS, CE_TARGETS).item()
    assert plain != pytest.approx(expected)


def test_class_weights_give_the_weighted_mean() -> None:
    weights = [1.0, 2.0, 0.5]
    loss_fn = build_loss("cross_entropy", {"class_weights": weights}, num_classes=3)
    num = den = 0.0
    for row, y in zip(CE_LOGITS.tolist(), CE_TARGETS.tolist(), strict=True):
        num += weights[y] * _neg_log_softmax(row)[y]
        den += weights[y]
    assert loss_fn(CE_LOGITS, CE_TARGETS).item() == pytest.approx(num / den, rel=1e-6)


def test_cross_entropy_accepts_column_float_and_probability_targets() -> None:
    loss_fn = build_loss("cross_entropy", {})
    expected = loss_fn(CE_LOGITS, CE_TARGETS).item()
    assert loss_fn(CE_LOGITS, CE_TARGETS.unsqueeze(1)).item() == pytest.approx(expected)
    assert loss_fn(CE_LOGITS, CE_TARGETS.float()).item() == pytest.approx(expected)
    one_hot = F.one_hot(CE_TARGETS, 3).float()
    assert loss_fn(CE_LOGITS, one_hot).item() == pytest.approx(expected)
    with pytest.raises(RecipeError, match="class indices"):
        loss_fn(CE_LOGITS, torch.tensor([0, 1]))


def test_class_weights_must_match_the_number_of_classes() -> None:
    with pytest.raises(RecipeError, match="train.loss.class_weights: 2 weights .* 3 classes"):
        build_loss("cross_entropy", {"class_weights": [1.0, 2.0]}, num_classes=3)
    loss_fn = build_loss("cross_entropy", {"class_weights": [1.0, 2.0]})
    with pytest.raises(RecipeError, match="train.loss.class_weights"):
        loss_fn(CE_LOGITS, CE_TARGETS)


@pytest.mark.parametrize(
    ("name", "knobs", "expected"),
    [
        ("cross_entropy", {"label_smoothing": 1.0}, "train.loss.label_smoothing"),
        ("cross_entropy", {"class_weights": [1.0, -1.0]}, "train.loss.class_weights"),
        ("cross_entropy", {"smoothing": 0.1}, "did you mean 'label_smoothing'"),
        ("huber", {"delta": 0.0}, "train.loss.delta"),
        ("bce", {"pos_weight": -2.0}, "train.loss.pos_weight"),
        ("mse", {"reduction": "sum"}, "unknown key 'reduction'"),
    ],
)
def test_invalid_loss_knob_is_a_recipe_error(name, knobs, expected) -> None:
    with pytest.raises(RecipeError, match=expected):
        build_loss(name, knobs)


def test_unknown_loss_suggests_the_closest() -> None:
    with pytest.raises(RecipeError, match="train.loss: unknown loss 'cross_entropi'; did you"):
        build_loss("cross_entropi", {})


def test_label_smoothing_trains_iris_and_keeps_logits_small() -> None:
    """On real data, smoothing keeps the accuracy while bounding the logits (28 → 7)."""
    x, y = load_iris(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    y = torch.tensor(y)
    results = {}
    for eps in (0.0, 0.1):
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        opt = build_optimizer(model, "adam", {}, lr=0.1)
        loss_fn = build_loss("cross_entropy", {"label_smoothing": eps}, num_classes=3)
        for _ in range(300):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        with torch.no_grad():
            logits = model(x)
        accuracy = (logits.argmax(1) == y).float().mean().item()
        results[eps] = (accuracy, logits.abs().max().item())
    assert results[0.0][0] > 0.95 and results[0.1][0] > 0.95
    assert results[0.1][1] < 0.5 * results[0.0][1]
