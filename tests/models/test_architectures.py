"""Image and MLP architectures: structure the recipe asks for, and learning on real MNIST."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import trainlab
from trainlab.data.datasets import DATASETS
from trainlab.errors import RecipeError
from trainlab.models import ACTIVATIONS, MODELS, MixtureOfExperts, make_activation
from trainlab.models.norms import BatchRenorm
from trainlab.tasks import TaskInfo
from trainlab.techniques.common import update_bn

from ..conftest import EXAMPLES

MNIST = TaskInfo("multiclass", 10, (1, 28, 28), [str(i) for i in range(10)])
#: a fast real-data run: 1 epoch on 1,500 MNIST images (train + val), tested on 8,500
FAST = {"data.test_size": 0.85, "train.epochs": 1, "train.threads": 1}


def _build(name: str, info: TaskInfo = MNIST, **params) -> nn.Module:
    torch.manual_seed(0)
    entry = MODELS.get(name)
    return entry.builder(entry.params(**params), info)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_activation_computes_its_function():
    x = torch.tensor([-1.0, 0.0, 2.0])
    expected = {
        "relu": [0.0, 0.0, 2.0],
        "leaky_relu": [-0.01, 0.0, 2.0],
        "elu": [torch.expm1(torch.tensor(-1.0)).item(), 0.0, 2.0],
        "selu": [1.0507 * 1.67326 * torch.expm1(torch.tensor(-1.0)).item(), 0.0, 1.0507 * 2],
        "sigmoid": torch.sigmoid(x).tolist(),
        "tanh": torch.tanh(x).tolist(),
        "gelu": nn.functional.gelu(x).tolist(),
        "silu": (x * torch.sigmoid(x)).tolist(),
        "linear": x.tolist(),
    }
    assert set(expected) == set(ACTIVATIONS.names())
    for name, values in expected.items():
        assert torch.allclose(make_activation(name)(x), torch.tensor(values), atol=1e-4), name
    model = _build("mlp", activation={"name": "leaky_relu", "negative_slope": 0.2})
    assert model[2].negative_slope == 0.2


def test_self_normalizing_mlp_uses_selu_lecun_and_alpha_dropout():
    model = _build(
        "mlp", hidden=[256, 256], activation="selu", init="self_normalizing", dropout=0.1
    )
    assert sum(isinstance(m, nn.AlphaDropout) for m in model.modules()) == 2
    assert model[1].weight.std().item() == pytest.approx((1 / 784) ** 0.5, rel=0.03)
    # self-normalizing: activations keep ≈ zero mean and unit variance through the layers
    h = model[:-1].eval()(torch.randn(2048, 1, 28, 28))
    assert abs(h.mean().item()) < 0.1 and 0.8 < h.std().item() < 1.2
    assert not any(isinstance(m, nn.AlphaDropout) for m in _build("mlp", dropout=0.1).modules())


def test_mlp_norm_kinds_and_moe_layer_placement():
    model = _build("mlp", hidden=[32, 16], norm="batch_renorm", moe={"layer": -1, "experts": 3})
    assert isinstance(model[2], BatchRenorm)
    moes = [m for m in model.modules() if isinstance(m, MixtureOfExperts)]
    assert len(moes) == 1 and moes[0].w1.shape == (3, 16, 32)
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    with pytest.raises(ValueError, match="moe.layer 2 is out of range"):
        _build("mlp", hidden=[32, 16], moe={"layer": 2})


def test_cnn_group_convolution_divides_weights_by_groups():
    plain = _build("cnn", channels=[8, 16], groups=1)
    grouped = _build("cnn", channels=[8, 16], groups=4)
    convs = [m for m in grouped.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].groups == 1  # a 1-channel image cannot be split into groups
    assert convs[1].groups == 4 and convs[1].weight.shape == (16, 2, 3, 3)
    assert _count(plain) - _count(grouped) == 16 * 8 * 9 * 3 // 4


def test_cnn_reproduces_the_seed_keras_layer_stack():
    params = trainlab.load_recipe(EXAMPLES / "mnist_cnn_bn.yaml").model.params
    model = MODELS.get("cnn").builder(params, MNIST)
    kinds = [type(m).__name__ for m in model]
    assert kinds == [
        "Conv2d", "BatchNorm2d", "MaxPool2d",
        "Conv2d", "BatchNorm2d", "MaxPool2d",
        "Flatten", "Linear", "ReLU", "BatchNorm1d", "Linear",
    ]  # fmt: skip
    assert model[6:].eval()(torch.zeros(1, 64, 5, 5)).shape == (
        1,
        10,
    )  # 'valid' convs: 28→26→13→11→5
    assert model[1].momentum == 0.01 and model[1].eps == 1e-3


def test_cnn_options_are_validated():
    with pytest.raises(ValueError, match="kernel_size has 3 values"):
        MODELS.get("cnn").params(channels=[8, 8], kernel_size=[3, 3, 3])
    with pytest.raises(ValueError, match="shrinks"):
        _build("cnn", channels=[8] * 5, padding="valid", kernel_size=7, pool="none")
    gap = _build("cnn", channels=[8, 16], head="gap", dense=[], stride=[2, 1])
    assert gap(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert gap[-1].in_features == 16


def test_resnet_depth_and_width():
    model = _build("resnet", depth=20)
    convs3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 19  # 6n+2 = 20 layers: 19 convolutions + the head
    assert 0.26e6 < _count(model) < 0.28e6  # He et al.: 0.27 M
    assert 0.45e6 < _count(_build("resnet", depth=32)) < 0.48e6
    assert _count(_build("resnet", depth=20, width=2)) > 3.8 * _count(model)
    with pytest.raises(ValueError, match="6n\\+2"):
        MODELS.get("resnet").params(depth=21)
    x = torch.randn(2, 1, 28, 28)
    assert model(x).shape == (2, 10)


def test_vgg_small_splits_features_and_classifier():
    model = _build("vgg_small", stages=[[8], [16, 16]], dense=[32])
    assert isinstance(model.features, nn.Sequential) and isinstance(model.classifier, nn.Sequential)
    assert model.classifier[-1].out_features == 10
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_image_models_refuse_flat_inputs(digits_recipe):
    digits_recipe["model"] = {"name": "resnet"}
    with pytest.raises(RecipeError, match="needs image inputs"):
        trainlab.train(digits_recipe)


@pytest.fixture(scope="module")
def mnist_subset() -> tuple[torch.Tensor, ...]:
    """2,000 real MNIST training images and 1,000 held-out ones (the shipped t10k file)."""
    data = DATASETS.get("mnist").builder(None)
    X, y = torch.as_tensor(data.X), torch.as_tensor(data.y)
    return X[:2000], y[:2000], X[-1000:], y[-1000:]


def _fit_one_epoch(model: nn.Module, subset: tuple[torch.Tensor, ...]) -> float:
    """Test accuracy after one epoch of Adam (63 steps of 32) on the 2,000 images.

    Batch-norm statistics are recomputed over the training images before the test (as
    `precise_bn` does): after 63 fast-moving steps the running averages lag the weights,
    and the eval-mode accuracy of ResNet-8 swung from 0.24 to 0.80 with the init seed
    alone while its recalibrated accuracy stays within 0.73-0.87.
    """
    x_train, y_train, x_test, y_test = subset
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))
    model.train()
    for i in range(0, len(order), 32):
        idx = order[i : i + 32]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
        opt.step()
    update_bn(model, [(x_train[i : i + 32], None) for i in range(0, len(x_train), 32)])
    model.eval()
    with torch.no_grad():
        return (model(x_test).argmax(1) == y_test).float().mean().item()


@pytest.mark.parametrize(
    ("name", "params", "floor"),
    [
        # floors: well under the lowest of init seeds 0-5 (cnn 0.86, gap 0.29, resnet8
        # 0.73, vgg_small 0.28, mlp_renorm 0.84)
        ("cnn", {"channels": [16, 32], "dense": [64]}, 0.80),
        # GAP heads learn slowly in 63 steps; 0.2 is still 10 standard deviations above chance
        ("cnn", {"channels": [16, 32], "groups": 4, "head": "gap", "dense": []}, 0.20),
        ("resnet", {"depth": 8, "width": 0.5}, 0.65),
        ("vgg_small", {"stages": [[8], [16]], "dense": [32]}, 0.20),
        ("mlp", {"hidden": [64], "norm": "batch_renorm"}, 0.80),
    ],
    ids=["cnn", "cnn_group_gap", "resnet8", "vgg_small", "mlp_renorm"],
)
def test_image_architectures_learn_real_mnist_in_one_epoch(mnist_subset, name, params, floor):
    assert _fit_one_epoch(_build(name, **params), mnist_subset) >= floor  # chance is 0.10


def test_moe_mlp_example_trains_end_to_end_on_mnist(tmp_path):
    run = trainlab.train(EXAMPLES / "mnist_moe.yaml", FAST, out=tmp_path / "run")
    assert run.metrics["test_accuracy"] >= 0.65  # 1 epoch on 1,275 images; chance is 0.10
    model = trainlab.load(run.run_dir).model
    moe = next(m for m in model.modules() if isinstance(m, MixtureOfExperts))
    gates = moe.gates(torch.randn(256, 784))[0]
    assert (gates > 0).float().mean(0).min() > 0.05  # the balancing loss kept every expert used


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "floor"),
    [
        # issue 4's bar is 0.98 on average: 0.9815 at seed 0, 0.9806 ± 0.0023 over seeds
        # 0-9 with precise_bn, whose minimum is 0.975 (0.971 without it, Keras' own code
        # 0.972) — see docs/models.md. The bar is bench/keras_reference.py's to check
        # over seeds; one run on another machine may land at any of those seeds' values.
        ("mnist_cnn_bn.yaml", 0.965),
        ("mnist_moe.yaml", 0.93),  # seeds 0-3: 0.939-0.9485
        ("mnist_resnet.yaml", 0.975),  # 0.9845 at seed 0 (docs/models.md)
    ],
)
def test_mnist_examples_reach_their_bars(tmp_path, example, floor):
    run = trainlab.train(EXAMPLES / example, out=tmp_path / "run")
    assert run.metrics["test_accuracy"] >= floor
