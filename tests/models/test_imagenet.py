"""ImageNet-layout ResNet-18/34/50 and VGG-16: torchvision's tensor names, counts, inputs.

The key → shape tables below are written from the papers' architecture tables (He et al.
2016 Table 1, torchvision's v1.5 bottleneck; Simonyan & Zisserman 2014 configuration D)
in torchvision's naming, not read off the models under test. Shape checks build on the
meta device (no memory, no arithmetic); forward passes run at 32-64 px.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainlab
from trainlab.errors import RecipeError
from trainlab.models import MODELS
from trainlab.setup import build_model
from trainlab.tasks import TaskInfo
from trainlab.techniques.common import select_parameters

from ..conftest import EXAMPLES

IMAGENET = TaskInfo("multiclass", 1000, (3, 224, 224), None)
CIFAR = TaskInfo("multiclass", 10, (3, 32, 32), None)
MNIST = TaskInfo("multiclass", 10, (1, 28, 28), None)
#: torchvision's published parameter counts (1000 classes)
PUBLISHED = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "vgg16": 138_357_544,
}
HEADS = {"resnet18": "fc", "resnet34": "fc", "resnet50": "fc", "vgg16": "classifier.6"}


def _build(name: str, info: TaskInfo = CIFAR, meta: bool = False, **params) -> nn.Module:
    torch.manual_seed(0)
    entry = MODELS.get(name)
    if meta:
        with torch.device("meta"):
            return entry.builder(entry.params(**params), info)
    return entry.builder(entry.params(**params), info)


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    stats = {f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")}
    return {**stats, f"{prefix}.num_batches_tracked": ()}


def resnet_table(blocks: tuple[int, ...], bottleneck: bool, classes: int = 1000) -> dict:
    """torchvision's ResNet state dict, key → shape, from He et al.'s Table 1."""
    table = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    c_in = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), 1):
        c_out = planes * 4 if bottleneck else planes
        for j in range(n):
            at = f"layer{stage}.{j}"
            if bottleneck:  # 1x1 reduce, 3x3, 1x1 expand
                convs = [(planes, c_in, 1, 1), (planes, planes, 3, 3), (c_out, planes, 1, 1)]
            else:
                convs = [(planes, c_in, 3, 3), (planes, planes, 3, 3)]
            for k, shape in enumerate(convs, 1):
                table |= {f"{at}.conv{k}.weight": shape, **_bn(f"{at}.bn{k}", shape[0])}
            if j == 0 and (stage > 1 or c_in != c_out):  # projection shortcut
                table |= {f"{at}.downsample.0.weight": (c_out, c_in, 1, 1)}
                table |= _bn(f"{at}.downsample.1", c_out)
            c_in = c_out
    return table | {"fc.weight": (classes, c_in), "fc.bias": (classes,)}


#: VGG-16 "D": (index in `features`, out, in) of its 13 convs; ReLUs and max pools between
VGG16_CONVS = [
    (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
    (14, 256, 256), (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512),
    (26, 512, 512), (28, 512, 512),
]  # fmt: skip


def vgg16_table(classes: int = 1000) -> dict:
    """torchvision's VGG-16 state dict, key → shape."""
    table = {}
    for i, c_out, c_in in VGG16_CONVS:
        table |= {f"features.{i}.weight": (c_out, c_in, 3, 3), f"features.{i}.bias": (c_out,)}
    for i, (c_out, c_in) in zip(
        (0, 3, 6), [(4096, 512 * 7 * 7), (4096, 4096), (classes, 4096)], strict=True
    ):
        table |= {f"classifier.{i}.weight": (c_out, c_in), f"classifier.{i}.bias": (c_out,)}
    return table


def _random_state(table: dict) -> dict[str, torch.Tensor]:
    """A checkpoint of the table's shapes: random weights scaled by 1/sqrt(fan-in) (so a
    forward pass stays finite), BN statistics near (0, 1), integer batch counts."""
    g = torch.Generator().manual_seed(1)
    state = {}
    for key, shape in table.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
            continue
        noise = torch.randn(shape, generator=g)
        if len(shape) > 1:
            state[key] = noise / (noise[0].numel() ** 0.5)
        elif key.endswith(("running_var", ".weight")):  # BN scales and variances: > 0
            state[key] = 1 + 0.1 * noise.abs()
        else:
            state[key] = 0.1 * noise
    return state


def test_parameter_counts_equal_torchvision_and_the_head_follows_the_task():
    for name, published in PUBLISHED.items():
        model = _build(name, IMAGENET, meta=True)
        assert sum(p.numel() for p in model.parameters()) == published, name
        # 10 classes: only the head shrinks (its input width x 990 fewer rows, 990 biases)
        head = model.get_submodule(HEADS[name])
        small = _build(name, CIFAR, meta=True)
        expected = published - 990 * (head.in_features + 1)
        assert sum(p.numel() for p in small.parameters()) == expected, name
        assert small.get_submodule(HEADS[name]).out_features == 10
        # the head is the last layer, so `init_from: {head: new}` can find it by name
        assert MODELS.get(name).metadata["head"] == HEADS[name]
        last = [k for k, _ in small.named_parameters()][-2:]
        assert last == [f"{HEADS[name]}.weight", f"{HEADS[name]}.bias"]


def test_state_dict_keys_and_shapes_are_torchvisions():
    r18 = _shapes(_build("resnet18", IMAGENET, meta=True))
    r34 = _shapes(_build("resnet34", IMAGENET, meta=True))
    r50 = _shapes(_build("resnet50", IMAGENET, meta=True))
    vgg = _shapes(_build("vgg16", IMAGENET, meta=True))
    assert r18 == resnet_table((2, 2, 2, 2), bottleneck=False)
    assert r34 == resnet_table((3, 4, 6, 3), bottleneck=False)
    assert r50 == resnet_table((3, 4, 6, 3), bottleneck=True)
    assert vgg == vgg16_table()
    # torchvision's ResNet-50: 161 parameters (53 convs, 53 BNs x 2, fc x 2) + 159 BN buffers
    assert (
        len(r50) == 320 and sum(not k.endswith(("_mean", "_var", "_tracked")) for k in r50) == 161
    )
    assert len(r18) == 122 and len(vgg) == 32
    samples = {
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),  # v1.5: the 3x3 conv carries the stride
        "layer3.5.bn3.running_var": (1024,),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "fc.weight": (1000, 2048),
    }
    assert {k: r50[k] for k in samples} == samples
    assert "layer1.0.downsample.0.weight" not in r18  # 64 → 64 at stride 1: identity
    assert r18["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert vgg["features.28.weight"] == (512, 512, 3, 3)
    assert vgg["classifier.0.weight"] == (4096, 25088)


def test_a_torchvision_named_checkpoint_loads_strictly_except_a_resized_head(tmp_path):
    table = resnet_table((3, 4, 6, 3), bottleneck=True)
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(_random_state(table), path)
    state = torch.load(path, weights_only=True)
    model = _build("resnet50", IMAGENET)
    assert not model.load_state_dict(state, strict=True).missing_keys
    assert torch.equal(model.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert torch.equal(model.bn1.running_var, state["bn1.running_var"])
    assert int(model.layer1[0].bn1.num_batches_tracked) == 7
    # a 10-class task: the 1000-class head does not fit, everything else loads
    small = _build("resnet50", CIFAR)
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        small.load_state_dict(state, strict=True)
    body = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = small.load_state_dict(body, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys
    small.eval()
    assert torch.isfinite(small(torch.rand(2, 3, 32, 32))).all()


def test_vgg16_loads_a_torchvision_named_state_dict_strictly():
    # on the meta device: 138 M parameters with no memory; key and shape checks still run
    with torch.device("meta"):
        state = {k: torch.empty(s) for k, s in vgg16_table().items()}
        state_10 = {k: torch.empty(s) for k, s in vgg16_table(classes=10).items()}
    model = _build("vgg16", IMAGENET, meta=True)
    assert not model.load_state_dict(state, strict=True, assign=True).missing_keys
    small = _build("vgg16", CIFAR, meta=True)
    with pytest.raises(RuntimeError, match="size mismatch for classifier.6.weight"):
        small.load_state_dict(state, strict=True, assign=True)
    small.load_state_dict(state_10, strict=True, assign=True)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_resnets_run_at_any_size_from_32_px_and_train(name):
    model = _build(name)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    out = model(torch.rand(2, 3, 40, 56))  # not square, not a multiple of 32
    assert out.shape == (2, 10)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_vgg16_runs_on_small_images_through_its_adaptive_pool():
    model = _build("vgg16", dropout=0.0).eval()
    x = torch.rand(2, 3, 32, 32)  # 1x1 after the five pools, 7x7 after `avgpool`
    assert model(x).shape == (2, 10)
    assert model.features(x).shape == (2, 512, 1, 1) and model.classifier[2].p == 0.0
    assert _build("vgg16", meta=True).classifier[2].p == 0.5  # the paper's dropout


def _conv1_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the first conv sees."""
    seen = []
    first = model.conv1 if hasattr(model, "conv1") else model.features[0]
    handle = first.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model(x)
    handle.remove()
    return seen[0]


def test_repeat_adapter_feeds_one_channel_as_three_to_pretrained_conv1():
    gray = TaskInfo("multiclass", 10, (1, 32, 32), None)
    model = _build("resnet18", gray).eval()
    assert model.conv1.weight.shape == (64, 3, 7, 7)  # loads ImageNet's conv1 as it is
    rgb = _build("resnet18").eval()
    rgb.load_state_dict(model.state_dict())
    x = torch.rand(2, 1, 32, 32)
    assert torch.allclose(model(x), rgb(x.repeat(1, 3, 1, 1)))
    assert torch.equal(_conv1_input(model, x), x.repeat(1, 3, 1, 1))


def test_conv_adapter_takes_the_tasks_channels_and_leaves_conv1_out_of_loading():
    gray = TaskInfo("multiclass", 10, (1, 32, 32), None)
    model = _build("resnet50", gray, channel_adapter="conv")
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    vgg = _build("vgg16", gray, meta=True, channel_adapter="conv")
    assert vgg.features[0].weight.shape == (64, 1, 3, 3)
    pretrained = _random_state(resnet_table((3, 4, 6, 3), bottleneck=True))
    body = {k: v for k, v in pretrained.items() if not k.startswith(("fc.", "conv1."))}
    result = model.load_state_dict(body, strict=False)
    assert sorted(result.missing_keys) == ["conv1.weight", "fc.bias", "fc.weight"]
    four = TaskInfo("multiclass", 10, (4, 32, 32), None)
    with pytest.raises(ValueError, match="have 4 channels; set model.channel_adapter: conv"):
        _build("resnet18", four)
    assert _build("resnet18", four, meta=True, channel_adapter="conv").conv1.in_channels == 4


def test_resize_resamples_inside_the_model_and_small_images_need_it():
    with pytest.raises(ValueError, match=r"this task's are 28x28; set model.resize: 64"):
        _build("resnet50", MNIST)
    with pytest.raises(ValueError, match="at least 32x32"):
        _build("vgg16", MNIST, meta=True)
    recipe = trainlab.load_recipe({"data": {"dataset": "mnist"}, "model": "resnet18"})
    with pytest.raises(RecipeError, match="model: model 'resnet18' needs images of at least"):
        build_model(recipe, MNIST)
    with pytest.raises(RecipeError, match="resize"):
        trainlab.load_recipe(
            {"data": {"dataset": "mnist"}, "model": {"name": "vgg16", "resize": 16}}
        )
    model = _build("resnet18", MNIST, resize=64).eval()
    x = torch.rand(2, 1, 28, 28)
    expected = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(_conv1_input(model, x), expected.repeat(1, 3, 1, 1))
    assert model(x).shape == (2, 10)
    vgg = _build("vgg16", MNIST, meta=True, resize=32)  # shapes only, on the meta device
    assert vgg(x.to("meta")).shape == (2, 10)


def test_imagenet_normalization_standardizes_the_pixels():
    model = _build("resnet18", normalize="imagenet").eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(_conv1_input(model, x), (x - mean) / std)
    assert torch.equal(_conv1_input(_build("resnet18").eval(), x), x)  # default: as given


def test_zero_init_residual_makes_every_block_start_as_the_identity():
    model = _build("resnet18", zero_init_residual=True).eval()
    blocks = [b for layer in (model.layer1, model.layer4) for b in layer]
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(model.layer1[1](x), torch.relu(x))  # residual branch is zero
    r50 = _build("resnet50", zero_init_residual=True)
    bottlenecks = [b for stage in (r50.layer1, r50.layer2, r50.layer3, r50.layer4) for b in stage]
    assert len(bottlenecks) == 16 and all(
        torch.count_nonzero(b.bn3.weight) == 0 for b in bottlenecks
    )
    assert torch.equal(r50.layer1[0].bn2.weight, torch.ones(64))  # only the last norm
    plain = _build("resnet18")
    assert torch.equal(plain.layer1[1].bn2.weight, torch.ones(64))


def test_transfer_example_validates_and_freezes_all_but_layer4_and_fc():
    recipe = trainlab.load_recipe(EXAMPLES / "transfer_resnet_local.yaml")
    assert recipe.data.dataset.name == "cifar10_sample" and recipe.model.name == "resnet50"
    assert recipe.model.params.resize == 64 and recipe.model.params.normalize == "imagenet"
    init = recipe.model.init_from
    assert init.weights == "checkpoints/resnet50-imagenet.pth" and init.head == "new"
    model = build_model(recipe, CIFAR)
    assert model.fc.out_features == 10
    (freeze,) = [t for t in recipe.techniques if t.name == "freeze"]
    frozen = {n for n, _ in select_parameters(model, freeze.params.layers, "freeze")}
    training = {n for n, _ in model.named_parameters()} - frozen
    assert training and all(n.startswith(("layer4.", "fc.")) for n in training)
    assert {n for n in frozen if n.startswith(("layer4.", "fc."))} == set()
    assert {"conv1.weight", "bn1.weight", "layer3.5.conv3.weight"} <= frozen
