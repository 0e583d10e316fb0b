"""Initializers: the statistics they promise, per-layer-kind choice, and the presets."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import trainlab
from trainlab.errors import RecipeError
from trainlab.models import MODELS, InitSpec, initialize
from trainlab.tasks import TaskInfo

DIGITS_INFO = TaskInfo("multiclass", 10, (64,), [str(i) for i in range(10)])


def _linear(n_in: int = 1000, n_out: int = 400, spec: str | dict = "torch") -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(n_in, n_out)
    return initialize(nn.Sequential(layer), InitSpec.model_validate(spec))[0]


def test_he_normal_std_is_sqrt_2_over_fan_in():
    w = _linear(1000, 400, "he_normal").weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / 1000), rel=0.02)
    assert w.mean().item() == pytest.approx(0.0, abs=0.002)


def test_he_fan_out_mode_and_leaky_gain():
    w = _linear(1000, 400, {"scheme": "kaiming_normal", "mode": "fan_out"}).weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    spec = {"scheme": "kaiming_uniform", "nonlinearity": "leaky_relu", "negative_slope": 0.2}
    w = _linear(1000, 400, spec).weight
    bound = math.sqrt(2 / (1 + 0.2**2)) * math.sqrt(3 / 1000)
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound


def test_glorot_lecun_normal_uniform_constant_zeros():
    w = _linear(1000, 400, "glorot_uniform").weight
    bound = math.sqrt(6 / 1400)
    assert bound * 0.99 < w.abs().max().item() <= bound
    assert _linear(1000, 400, "xavier_normal").weight.std().item() == pytest.approx(
        math.sqrt(2 / 1400), rel=0.02
    )
    assert _linear(1000, 400, "lecun_normal").weight.std().item() == pytest.approx(
        1 / math.sqrt(1000), rel=0.02
    )
    w = _linear(1000, 400, {"scheme": "normal", "std": 0.05}).weight
    assert w.std().item() == pytest.approx(0.05, rel=0.02)
    w = _linear(100, 50, {"scheme": "uniform", "bound": 0.3}).weight
    assert 0.29 < w.abs().max().item() <= 0.3
    layer = _linear(10, 5, {"scheme": "constant", "value": 0.5})
    assert torch.all(layer.weight == 0.5) and torch.all(layer.bias == 0)
    assert torch.all(_linear(10, 5, "zeros").weight == 0)


def test_orthogonal_gives_orthonormal_rows():
    w = _linear(64, 32, "orthogonal").weight
    assert torch.allclose(w @ w.T, torch.eye(32), atol=1e-5)


def test_torch_preset_leaves_pytorch_defaults_and_biases():
    torch.manual_seed(0)
    ref = nn.Linear(20, 10)
    assert torch.equal(_linear(20, 10, "torch").weight, ref.weight)
    assert torch.equal(_linear(20, 10, "torch").bias, ref.bias)


def test_per_kind_choice_for_embedding_conv_linear_and_recurrent():
    torch.manual_seed(0)
    model = nn.ModuleDict(
        {
            "emb": nn.Embedding(500, 64, padding_idx=0),
            "conv": nn.Conv2d(16, 32, 3),
            "lin": nn.Linear(300, 200),
            "lstm": nn.LSTM(64, 32),
        }
    )
    spec = {
        "scheme": "zeros",
        "conv": "he_normal",
        "embedding": "normal",
        "std": 0.1,
        "recurrent": "orthogonal",
        "bias": "constant",
        "value": 0.25,
    }
    initialize(model, InitSpec.model_validate(spec))
    assert model["emb"].weight[1:].std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.all(model["emb"].weight[0] == 0)  # the padding row stays zero
    assert model["conv"].weight.std().item() == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.05)
    assert torch.all(model["lin"].weight == 0)
    assert torch.all(model["lin"].bias == 0.25) and torch.all(model["conv"].bias == 0.25)
    hh = model["lstm"].weight_hh_l0  # (4·32, 32): orthonormal columns
    assert torch.allclose(hh.T @ hh, torch.eye(32), atol=1e-5)
    assert torch.all(model["lstm"].weight_ih_l0 == 0)
    assert torch.all(model["lstm"].bias_hh_l0 == 0.25)


def test_keras_preset_sets_glorot_zero_bias_and_batchnorm_momentum_eps():
    model = MODELS.get("cnn").builder(
        MODELS.get("cnn").params(init="keras", dense_norm=True),
        TaskInfo("multiclass", 10, (1, 28, 28), None),
    )
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 3
    assert all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)][0]
    bound = math.sqrt(6 / (linear.in_features + linear.out_features))
    assert linear.weight.abs().max().item() <= bound
    assert torch.all(linear.bias == 0)


def test_zeros_init_never_breaks_symmetry_on_real_digits():
    """The seeds' warning: all-zero weights leave every hidden unit identical."""
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)

    def train(init: str) -> nn.Linear:
        torch.manual_seed(0)
        entry = MODELS.get("mlp")
        model = entry.builder(
            entry.params(hidden=[16], activation="sigmoid", init=init), DIGITS_INFO
        )
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        for i in range(30):
            xb, yb = X[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        return model[1]

    hidden = train("zeros")
    assert hidden.weight.abs().max().item() > 1e-3  # the layer did learn something …
    assert torch.allclose(hidden.weight, hidden.weight[0].expand_as(hidden.weight))  # … identically
    he = train("he_normal")
    assert (he.weight - he.weight[0]).abs().max().item() > 0.1


def test_unknown_initializer_in_recipe_is_a_recipe_error_with_hint(digits_recipe):
    digits_recipe["model"]["init"] = "he_nromal"
    with pytest.raises(RecipeError, match="he_nromal"):
        trainlab.train(digits_recipe)
    digits_recipe["model"]["init"] = {"scheme": "he_normal", "bias": "orthogonal"}
    with pytest.raises(RecipeError, match="init.bias"):
        trainlab.train(digits_recipe)


def test_keras_batchnorm_warm_start_averages_cumulatively_then_exponentially():
    """Momentum 0.99 alone would keep running_var near its initial 1 for hundreds of steps."""
    torch.manual_seed(0)
    bn = initialize(nn.Sequential(nn.BatchNorm1d(3)), "keras")[0]
    batches = [torch.randn(64, 3) * 0.1 + 2.0 for _ in range(150)]
    for x in batches[:10]:
        bn(x)
    means = torch.stack([x.mean(0) for x in batches[:10]]).mean(0)
    assert torch.allclose(bn.running_mean, means, atol=1e-5)  # the plain average of 10 batches
    assert bn.running_var.mean().item() == pytest.approx(0.01, rel=0.2)
    for x in batches[10:]:
        bn(x)
    assert bn.momentum == 0.01  # Keras' 0.99 once 100 batches have been seen
    plain = InitSpec.model_validate({"scheme": "xavier_uniform", "bn_momentum": 0.01})
    cold = initialize(
        nn.Sequential(nn.BatchNorm1d(3)), plain.model_copy(update={"bn_warm_start": False})
    )[0]
    for x in batches[:10]:
        cold(x)
    assert cold.running_var.mean().item() > 0.8  # still dominated by the initial 1


def test_a_preset_can_be_adjusted_key_by_key():
    spec = InitSpec.model_validate({"preset": "keras", "bn_momentum": 0.1, "embedding": "normal"})
    assert spec.scheme == "xavier_uniform" and spec.recurrent == "orthogonal"
    assert spec.bn_momentum == 0.1 and spec.bn_eps == 1e-3 and spec.embedding == "normal"
    with pytest.raises(ValueError, match="kears"):
        InitSpec.model_validate({"preset": "kears"})
