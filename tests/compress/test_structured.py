"""structured pruning with Torch-Pruning: coupled groups (residual adds, group convs),
heads and frozen layers kept whole, rebuildable from shapes, and real runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import trainlab
from trainlab.compress.methods import MethodOptions
from trainlab.compress.source import load_source
from trainlab.compress.structured import _pruner, build_structured, layer_widths, torch_pruning
from trainlab.errors import RecipeError
from trainlab.models.cnn import CNNParams, build_cnn
from trainlab.models.mlp import MLPParams, build_mlp
from trainlab.models.resnet import BasicBlock, ResNetParams, build_resnet
from trainlab.models.structure import apply_shapes, changed_shapes
from trainlab.models.tabular import WideDeepParams, build_wide_deep
from trainlab.models.text import TextCNNParams, TextRNNParams, build_text_cnn, build_text_rnn
from trainlab.models.vgg import VGGParams, build_vgg_small
from trainlab.tasks import TaskInfo

tp = pytest.importorskip("torch_pruning")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TEXT = {"kind": "text", "vocab_size": 40, "pad_index": 0}
TABLE = {"kind": "tabular", "numeric": 3, "cardinalities": [4, 5], "categorical_names": ["a", "b"]}


def _info(shape: tuple[int, ...], out: int = 10, features: dict | None = None) -> TaskInfo:
    return TaskInfo("multiclass", out, shape, None, features=features or {})


ARCHS = {
    "resnet": (
        lambda: build_resnet(ResNetParams(depth=8, width=0.5), _info((1, 12, 12))),
        lambda: torch.randn(4, 1, 12, 12),
    ),
    "vgg_small": (
        lambda: build_vgg_small(VGGParams(stages=[[8], [8, 16]]), _info((3, 8, 8))),
        lambda: torch.randn(4, 3, 8, 8),
    ),
    "cnn_groups": (
        lambda: build_cnn(
            CNNParams(channels=[8, 16, 16], groups=[1, 4, 2], dense=[12]), _info((1, 8, 8))
        ),
        lambda: torch.randn(4, 1, 8, 8),
    ),
    "mlp_layer_norm": (
        lambda: build_mlp(MLPParams(hidden=[16, 12], norm="layer"), _info((9,), 3)),
        lambda: torch.randn(4, 9),
    ),
    "mlp_moe": (
        lambda: build_mlp(MLPParams(hidden=[16, 12, 8], moe={"layer": 1}), _info((9,), 3)),
        lambda: torch.randn(4, 9),
    ),
    "mlp_numeric_embedding": (
        lambda: build_mlp(
            MLPParams(hidden=[16, 8], numeric_embedding={"dim": 4, "frequencies": 3}),
            TaskInfo("regression", 1, (6,), None, features={"kind": "tabular", "continuous": 3}),
        ),
        lambda: torch.randn(4, 6),
    ),
    "cnn_depthwise_batch_renorm": (
        lambda: build_cnn(
            CNNParams(channels=[8, 8], groups=[1, 8], norm="batch_renorm", dense=[6]),
            _info((1, 8, 8)),
        ),
        lambda: torch.randn(4, 1, 8, 8),
    ),
    "cnn_depthwise": (
        lambda: build_cnn(CNNParams(channels=[8, 8, 16], groups=[1, 8, 1]), _info((1, 8, 8))),
        lambda: torch.randn(4, 1, 8, 8),
    ),
    "wide_deep": (
        lambda: build_wide_deep(WideDeepParams(crosses=[["a", "b"]]), _info((5,), 3, TABLE)),
        lambda: torch.cat([torch.randn(4, 3), torch.randint(0, 4, (4, 2)).float()], 1),
    ),
    "text_cnn": (
        lambda: build_text_cnn(
            TextCNNParams(embedding_dim=8, widths=[2, 3], filters=6), _info((7,), 2, TEXT)
        ),
        lambda: torch.randint(1, 40, (4, 7)).float(),
    ),
    "text_rnn": (
        lambda: build_text_rnn(
            TextRNNParams(embedding_dim=8, hidden=6, dense=[10], pooling="mean_max"),
            _info((7,), 2, TEXT),
        ),
        lambda: torch.randint(1, 40, (4, 7)).float(),
    ),
}


def _prune(name: str, amount: float = 0.5, importance: str = "magnitude"):
    """Prune a freshly built `name` once with Torch-Pruning; also return a second
    fresh build (the recipe's model) and an input batch."""
    build, inputs = ARCHS[name]
    torch.manual_seed(0)
    model = build().eval()
    torch.manual_seed(1)
    x = inputs()
    pruner, notes = _pruner(tp, model, x, amount, MethodOptions(importance=importance))
    pruner.step()
    return model.eval(), build().eval(), x, notes


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_pruned_models_run_and_rebuild_exactly_from_their_shapes(name):
    model, fresh, x, _ = _prune(name)
    before = layer_widths(fresh)
    after = layer_widths(model)
    assert after != before  # something was pruned
    with torch.no_grad():
        out = model(x)
    assert out.shape == (len(x), fresh(x).shape[1])  # the head's outputs are intact
    apply_shapes(fresh, changed_shapes(model, build_again(name)))
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), out)


def build_again(name: str) -> nn.Module:
    torch.manual_seed(0)
    return ARCHS[name][0]()


def test_resnet_residual_groups_keep_matching_shapes():
    model, fresh, x, notes = _prune("resnet")
    for block in model.modules():
        if isinstance(block, BasicBlock):
            skip = block.shortcut
            c_out = block.conv2.out_channels
            assert block.conv1.out_channels == block.norm1.num_features
            assert block.norm2.num_features == c_out
            if isinstance(skip, nn.Sequential):
                assert skip[0].out_channels == c_out == skip[1].num_features
            else:
                assert block.conv1.in_channels == c_out  # identity shortcut: same width
    assert model.stem[0].out_channels == 4  # stage 1's 8 channels, halved as one group
    assert model.head.out_features == 10 and model.head.in_features == 16
    assert any("'head' kept whole" in n for n in notes)


def test_group_convs_keep_their_groups_and_depthwise_stays_depthwise():
    model, fresh, _, _ = _prune("cnn_groups")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 4, 2]
    assert all(c.in_channels % c.groups == 0 and c.out_channels % c.groups == 0 for c in convs)
    model, _, _, _ = _prune("cnn_depthwise")
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1]
    assert depthwise.in_channels == depthwise.out_channels == depthwise.groups == 4


def test_wide_parts_and_embedding_inputs_are_kept_whole():
    model, _, _, notes = _prune("wide_deep")
    assert [model.deep_mlp[i].out_features for i in (0, 2, 4)] == [32, 16, 3]
    assert model.wide_linear.out_features == 3 and model.wide_bias.shape == (3,)
    assert any("'wide_embeddings.0' kept whole" in n for n in notes)
    mlp, _, _, notes = _prune("mlp_numeric_embedding")
    assert mlp[2].in_features == 15 and mlp[2].out_features == 8  # 3 × 4 embedded + 3 raw
    assert any("(PeriodicEmbedding) kept whole" in n for n in notes)
    renorm, _, _, notes = _prune("cnn_depthwise_batch_renorm")
    assert [c.out_channels for c in renorm if isinstance(c, nn.Conv2d)] == [8, 8]
    assert any("(BatchRenorm), which stays whole" in n for n in notes)


def test_frozen_layers_and_their_coupled_layers_keep_their_width():
    model, fresh, _, notes = _prune("mlp_moe")
    assert model[1].out_features == 16  # feeds the mixture of experts: kept whole
    assert model[3].router.in_features == 16 and model[5].in_features == 12  # MoE in/out whole
    assert model[5].out_features == 4 and model[7].in_features == 4  # after it: pruned
    assert any("MixtureOfExperts" in n for n in notes)
    rnn, fresh, _, notes = _prune("text_rnn")
    assert rnn.rnn.hidden_size == 6 and rnn.embedding.embedding_dim == 8
    assert rnn.dense[0].out_features == 5 and rnn.dense[0].in_features == 24
    text_cnn, _, _, _ = _prune("text_cnn")
    assert [c.out_channels for c in text_cnn.convs] == [3, 3] and text_cnn.head.in_features == 6


def test_missing_torch_pruning_is_a_recipe_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    with pytest.raises(RecipeError, match=r"pip install -e \.\[compress\]"):
        torch_pruning()


def test_structured_prunes_a_seed_cnn_end_to_end(trained):
    source = load_source(trained["cnn"], target_drop=0.10)
    opts = MethodOptions(finetune_epochs=1, importance="bn_scale")
    result = build_structured(source.model, 0.5, source.ctx, opts)
    assert result.details["layers"] == {
        "0": {"before": 8, "after": 4},
        "3": {"before": 16, "after": 8},
        "7": {"before": 32, "after": 16},
    }
    assert result.model[10].out_features == 10 and result.met_target
    assert source.ctx.score(result.model, "test") > 0.8
    assert result.details["parameters"]["after"] < result.details["parameters"]["before"] / 2


def test_structured_taylor_on_the_seed_mlp_end_to_end(trained):
    source = load_source(trained["mlp"], target_drop=0.05)
    opts = MethodOptions(finetune_epochs=1, importance="taylor", calibration_batches=4)
    result = build_structured(source.model, 0.5, source.ctx, opts)
    assert result.model[1].out_features == 64 and result.model[4].out_features == 10
    assert result.met_target and source.ctx.score(result.model, "test") > 0.85


def test_bn_scale_without_batch_norm_is_refused(trained):
    source = load_source(trained["mlp"])
    with pytest.raises(RecipeError, match="no prunable layer is followed by batch norm"):
        build_structured(source.model, 0.5, source.ctx, MethodOptions(importance="bn_scale"))


@pytest.mark.slow
def test_structured_prunes_a_resnet_end_to_end(tmp_path):
    run = trainlab.train(
        EXAMPLES / "mnist_resnet.yaml",
        ["train.epochs=1", "model.depth=8", "model.width=0.5"],
        out=tmp_path / "resnet",
    )
    source = load_source(run.run_dir, target_drop=0.10)
    opts = MethodOptions(finetune_epochs=1, steps=2, importance="taylor", calibration_batches=4)
    result = build_structured(source.model, 0.5, source.ctx, opts)
    assert result.model.stem[0].out_channels == 4 and result.model.head.out_features == 10
    assert [s["amount"] for s in result.details["steps"]] == [0.25, 0.5]
    assert result.met_target and source.ctx.score(result.model, "test") > 0.8
