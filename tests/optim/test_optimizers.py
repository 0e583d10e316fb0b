"""Optimizer registry: every optimizer converges, decay groups, metadata, recipe errors."""

from __future__ import annotations

import inspect

import pytest
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

from trainlab.errors import RecipeError
from trainlab.optim import OPTIMIZERS, build_loss, build_optimizer, split_decay_groups
from trainlab.optim.optimizers import SGDParams

# (lr, knobs) per optimizer for the shared convergence test; a new optimizer must add a
# row (test_every_optimizer_has_a_convergence_setting fails otherwise). Knobs exercise
# non-default settings where an optimizer has them.
CONVERGENCE = {
    "sgd": (0.1, {"momentum": 0.9, "nesterov": True}),
    "adam": (0.01, {}),
    "adamw": (0.01, {"amsgrad": True}),
    "adagrad": (0.1, {}),
    "adadelta": (1.0, {}),
    "rmsprop": (0.01, {"momentum": 0.5, "centered": True}),
}
STEPS = 300
# Measured: every optimizer reaches 0.049–0.069 from 0.684 in 300 full-batch steps.
MAX_FINAL_LOSS = 0.08


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny full-batch problems run fastest on one thread, and stay fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def breast_cancer() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def test_every_optimizer_has_a_convergence_setting() -> None:
    assert set(CONVERGENCE) == set(OPTIMIZERS.names())


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_fits_logistic_regression(name, breast_cancer) -> None:
    x, y = breast_cancer
    lr, knobs = CONVERGENCE[name]
    torch.manual_seed(0)
    model = nn.Linear(30, 1)
    opt = build_optimizer(model, name, knobs, lr=lr, weight_decay=1e-4)
    assert isinstance(opt, OPTIMIZERS.get(name).metadata["torch_class"])
    loss_fn = build_loss("bce", {})
    with torch.no_grad():
        start = loss_fn(model(x), y).item()
    for _ in range(STEPS):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        end = loss_fn(model(x), y).item()
    assert start > 0.6
    assert end < MAX_FINAL_LOSS


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_metadata_and_defaults_match_torch(name) -> None:
    entry = OPTIMIZERS.get(name)
    torch_class = entry.metadata["torch_class"]
    signature = inspect.signature(torch_class.__init__).parameters
    assert entry.metadata["has_betas"] == ("betas" in signature)
    assert entry.metadata["has_momentum"] == ("momentum" in signature)
    assert entry.metadata["suggested_lr"] > 0
    assert entry.description
    for key, value in entry.params().model_dump().items():
        assert signature[key].default == value, key
    # lr and weight decay are training knobs, never optimizer knobs
    assert "lr" not in entry.params.model_fields
    assert "weight_decay" not in entry.params.model_fields


class MyNorm(nn.Module):
    """A custom normalization layer with a 2-D parameter: excluded by its class name."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[0, 0]


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8),  # 0
        nn.BatchNorm1d(8),  # 1
        nn.ReLU(),
        nn.Linear(8, 3),  # 3
        nn.LayerNorm(3),  # 4
        nn.Linear(3, 2, bias=False),  # 5
        nn.GroupNorm(1, 2),  # 6
        MyNorm(),  # 7
    )


def test_decay_norm_and_bias_false_puts_norms_and_biases_in_a_zero_decay_group() -> None:
    net = _net()
    opt = build_optimizer(net, "sgd", {}, lr=0.1, weight_decay=0.01, decay_norm_and_bias=False)
    decay, no_decay = opt.param_groups
    assert (decay["group"], decay["weight_decay"]) == ("decay", 0.01)
    assert (no_decay["group"], no_decay["weight_decay"]) == ("no_decay", 0.0)
    named = dict(net.named_parameters())
    assert {id(p) for p in decay["params"]} == {
        id(named[n]) for n in ("0.weight", "3.weight", "5.weight")
    }
    assert {id(p) for p in no_decay["params"]} == {
        id(named[n])
        for n in (
            "0.bias",
            "1.weight",
            "1.bias",
            "3.bias",
            "4.weight",
            "4.bias",
            "6.weight",
            "6.bias",
            "7.scale",
        )
    }
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]


def test_zero_decay_group_really_is_not_decayed() -> None:
    net = _net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = build_optimizer(net, "sgd", {}, lr=0.1, weight_decay=0.5, decay_norm_and_bias=False)
    # a zero gradient isolates the decay term: p ← p − lr·wd·p for decayed params only
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(net.named_parameters())
    for name in ("0.weight", "3.weight", "5.weight"):
        torch.testing.assert_close(after[name], before[name] * (1 - 0.1 * 0.5))
    for name in ("0.bias", "1.weight", "4.bias", "7.scale"):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


def test_default_is_one_group_decaying_everything() -> None:
    net = _net()
    opt = build_optimizer(net, "adamw", {}, lr=0.01, weight_decay=0.05)
    (group,) = opt.param_groups
    assert group["group"] == "all" and group["weight_decay"] == 0.05 and group["lr"] == 0.01
    assert len(group["params"]) == len(list(net.parameters()))


def test_shared_parameter_is_counted_once() -> None:
    shared = nn.Linear(3, 3)
    net = nn.Sequential(shared, nn.Tanh(), shared)
    decay, no_decay = split_decay_groups(net)
    assert len(decay) == 1 and len(no_decay) == 1


def test_recipe_lr_and_weight_decay_are_the_optimizer_defaults() -> None:
    opt = build_optimizer(nn.Linear(2, 1), "adam", {}, lr=0.03, weight_decay=0.2)
    opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))]})
    assert opt.param_groups[-1]["lr"] == 0.03
    assert opt.param_groups[-1]["weight_decay"] == 0.2


def test_knobs_reach_the_torch_optimizer() -> None:
    opt = build_optimizer(nn.Linear(2, 1), "adam", {"betas": [0.8, 0.99], "eps": 1e-6}, lr=1e-3)
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)
    assert opt.param_groups[0]["eps"] == 1e-6


def test_accepts_a_validated_model_or_a_whole_recipe_section() -> None:
    model = nn.Linear(2, 1)
    opt = build_optimizer(model, "sgd", SGDParams(momentum=0.5), lr=0.1)
    assert opt.param_groups[0]["momentum"] == 0.5
    opt = build_optimizer(model, "sgd", {"name": "sgd", "momentum": 0.7}, lr=0.1)
    assert opt.param_groups[0]["momentum"] == 0.7
    with pytest.raises(RecipeError, match="train.optimizer.name"):
        build_optimizer(model, "sgd", {"name": "adam"}, lr=0.1)


def test_unknown_optimizer_name_suggests_the_closest() -> None:
    with pytest.raises(RecipeError, match="did you mean 'adam'") as info:
        build_optimizer(nn.Linear(2, 1), "adma", {}, lr=0.1)
    assert "train.optimizer" in str(info.value)


@pytest.mark.parametrize(
    ("name", "knobs", "expected"),
    [
        ("sgd", {"momentum": -0.1}, "train.optimizer.momentum"),
        ("sgd", {"momentum": 1.0}, "train.optimizer.momentum"),
        ("sgd", {"nesterov": True}, "nesterov: true needs momentum > 0"),
        ("sgd", {"momentum": 0.9, "nesterov": True, "dampening": 0.1}, "dampening"),
        ("sgd", {"momentun": 0.9}, "did you mean 'momentum'"),
        ("adam", {"betas": [0.9, 1.2]}, "train.optimizer.betas.1"),
        ("adam", {"betas": [0.9]}, "train.optimizer.betas"),
        ("adamw", {"eps": 0}, "train.optimizer.eps"),
        ("adagrad", {"lr_decay": -1}, "train.optimizer.lr_decay"),
        ("adadelta", {"rho": 1.5}, "train.optimizer.rho"),
        ("rmsprop", {"alpha": -0.5}, "train.optimizer.alpha"),
        ("sgd", {"lr": 0.1}, "unknown key 'lr'"),
    ],
)
def test_invalid_knob_is_a_recipe_error_naming_the_key(name, knobs, expected) -> None:
    with pytest.raises(RecipeError, match=expected):
        build_optimizer(nn.Linear(2, 1), name, knobs, lr=0.1)


def test_bad_lr_or_weight_decay_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="train.lr"):
        build_optimizer(nn.Linear(2, 1), "sgd", {}, lr=0.0)
    with pytest.raises(RecipeError, match="train.weight_decay"):
        build_optimizer(nn.Linear(2, 1), "sgd", {}, lr=0.1, weight_decay=-1.0)
