"""Every architecture names its parts: head, backbone and blocks in forward order."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import trainlab
from trainlab.transfer.groups import keys_under, layer_groups, module_names, resolve_layers

from .helpers import FLAT, IMAGES, TABLE, TEXT, Probe, build, snapshot

CASES = [
    ("cnn", IMAGES, {"channels": [8, 16], "dense": [32], "dense_norm": True}),
    ("mlp", FLAT, {"hidden": [32, 16], "norm": "batch"}),
    ("mlp", FLAT, {"hidden": [32, 16], "moe": {"layer": 0}}),
    ("resnet", IMAGES, {}),
    ("vgg_small", IMAGES, {}),
    ("text_rnn", TEXT, {"dense": [16], "pooling": "attention"}),
    ("text_cnn", TEXT, {}),
    ("wide_deep", TABLE, {}),
]


@pytest.mark.parametrize(("name", "info", "params"), CASES, ids=lambda c: str(c)[:20])
def test_head_and_blocks_partition_every_tensor(name, info, params):
    model = build(name, info, **params)
    groups = layer_groups(model, name)
    keys = list(model.state_dict())
    head = keys_under(groups["head"], keys)
    blocks = [keys_under(groups[g], keys) for g in groups if g.startswith("block")]
    assert head and blocks
    assert keys_under(groups["backbone"], keys) == [k for k in keys if k not in head]
    flat = [k for b in blocks for k in b]
    assert sorted(flat + head) == sorted(keys)  # each tensor in exactly one part
    assert len(set(flat)) == len(flat)
    assert all(list(model.state_dict()[k].shape)[0] == info.output_dim for k in head
               if k.endswith(("weight", "bias")) and "embeddings" not in k)  # fmt: skip


def test_cnn_blocks_are_its_conv_blocks_then_dense_blocks():
    model = build("cnn", channels=[8, 16], dense=[32], norm="batch")
    groups = layer_groups(model, "cnn")
    kinds = [[type(model.get_submodule(m)).__name__ for m in groups[f"block{i}"]]
             for i in (1, 2, 3)]  # fmt: skip
    assert kinds == [["Conv2d", "BatchNorm2d"], ["Conv2d", "BatchNorm2d"], ["Linear"]]
    assert type(model.get_submodule(groups["head"][0])).__name__ == "Linear"
    assert "block4" not in groups


def test_resnet_and_vgg_blocks_are_stages():
    resnet = layer_groups(build("resnet"), "resnet")
    assert [resnet[f"block{i}"] for i in range(1, 5)] == [["stem"], ["layer1"], ["layer2"],
                                                          ["layer3"]]  # fmt: skip
    assert resnet["head"] == ["head"]
    vgg = build("vgg_small", stages=[[8, 8], [16]], dense=[32])
    groups = layer_groups(vgg)  # the class says it is vgg_small
    assert groups["block1"] == ["features.0", "features.1", "features.3", "features.4"]
    assert groups["block2"] == ["features.7", "features.8"]
    assert groups["block3"] == ["classifier.0"] and groups["head"] == ["classifier.3"]


def test_wide_deep_head_holds_the_wide_part():
    groups = layer_groups(build("wide_deep", TABLE), "wide_deep")
    assert {"wide_bias", "wide_embeddings", "wide_linear"} <= set(groups["head"])
    assert groups["block1"] == ["deep_embeddings"]


def test_unknown_layer_suggests_the_closest_names():
    model = build("resnet")
    assert "layer1.0.conv1" in module_names(model)
    with pytest.raises(
        trainlab.RecipeError, match="unknown layer 'backbon'; did you mean 'backbone'"
    ):
        resolve_layers(model, ["backbon"])
    with pytest.raises(trainlab.RecipeError, match="unknown layer 'block9'; did you mean 'block"):
        resolve_layers(model, ["block9"])
    with pytest.raises(trainlab.RecipeError, match="'fc.*' matches no tensor"):
        resolve_layers(model, ["fc.*"])


def test_entries_resolve_groups_modules_tensors_and_patterns():
    model = build("resnet")
    found = resolve_layers(model, ["head", "stem", "layer1.0.conv1.weight", "layer3.*.bias"])
    assert found["head"] == ["head.weight", "head.bias"]
    assert found["layer1.0.conv1.weight"] == ["layer1.0.conv1.weight"]
    assert all(k.startswith("stem.") for k in found["stem"]) and found["stem"]
    assert all(k.startswith("layer3.") and k.endswith(".bias") for k in found["layer3.*.bias"])


class TorchvisionLike(nn.Module):
    """An architecture without hints, laid out like torchvision's ResNet."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(3))
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
        self.layer2 = nn.Sequential(nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 10)


def test_an_unknown_architecture_is_split_by_the_generic_rule():
    groups = layer_groups(TorchvisionLike(), "some_new_net")
    assert groups["head"] == ["fc"]
    assert groups["block1"] == ["mean", "conv1", "bn1"]
    assert (groups["block2"], groups["block3"]) == (["layer1"], ["layer2"])
    assert groups["backbone"] == ["mean", "conv1", "bn1", "layer1", "layer2"]


def test_freeze_takes_part_names_and_suggests_for_a_typo(digits_recipe, tmp_path):
    digits_recipe["model"]["hidden"] = [32, 16]
    snaps = []
    probes = [
        Probe("fit_start", lambda s: snaps.append(snapshot(s.model))),
        Probe("fit_end", lambda s: snaps.append(snapshot(s.model))),
    ]
    digits_recipe["techniques"] = [{"name": "freeze", "layers": ["block1"]}]
    trainlab.train(digits_recipe, out=tmp_path / "r", extra_techniques=probes)
    start, end = snaps
    assert torch.equal(start["1.weight"], end["1.weight"])  # block1: the first dense layer
    assert not torch.equal(start["4.weight"], end["4.weight"])  # block2 trained
    digits_recipe["techniques"] = [{"name": "freeze", "layers": ["backbon"]}]
    with pytest.raises(trainlab.RecipeError, match="unknown layer 'backbon'; did you mean"):
        trainlab.train(digits_recipe, out=tmp_path / "typo")
    digits_recipe["techniques"] = [{"name": "freeze", "layers": ["2"]}]  # a ReLU
    with pytest.raises(trainlab.RecipeError, match="'2' holds no parameters"):
        trainlab.train(digits_recipe, out=tmp_path / "relu")
