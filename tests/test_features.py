"""Feature extraction from any layer (issue 18, item 6) and the layer listing (item 1)."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import trainlab
from trainlab.errors import DataError, RecipeError
from trainlab.features import extract, list_layers, resolve_layer
from trainlab.prepare import prepare

from .conftest import EXAMPLES
from .test_cli import cli, last_json, subprocess_cli

#: Tiny real runs: one epoch on 30 images a class (the test split is MNIST's canonical one).
TINY = ["train.epochs=1", "data.train_per_class=30"]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """(predictor, 64 canonical test images as the loader gives them) of a 1-epoch
    mnist_mlp_dropout run: flatten → dense 128 → ReLU → dropout → dense 10."""
    tmp = tmp_path_factory.mktemp("mlp")
    run = trainlab.train(
        EXAMPLES / "mnist_mlp_dropout.yaml", TINY, out=tmp / "run", store=f"sqlite:///{tmp}/i.db"
    )
    predictor = trainlab.load(run.run_dir)
    x, _ = prepare(run.recipe, preprocessor=predictor.preprocessor).tensors("test", limit=64)
    return predictor, x.numpy()


def test_hidden_layer_features_equal_a_manual_forward(mlp):
    predictor, x = mlp
    model = predictor.model
    with torch.no_grad():
        manual = model[2](model[1](model[0](torch.as_tensor(x)))).numpy()
    features = predictor.features(x, "2")
    assert features.shape == (64, 128) and features.dtype == np.float32
    np.testing.assert_allclose(features, manual, rtol=1e-6, atol=1e-6)
    assert (features >= 0).all() and (features > 0).any()  # a ReLU's output, not all dead
    # the (N, 28, 28) layout `predict` accepts gives the same features
    np.testing.assert_array_equal(predictor.features(x[:, 0], "2"), features)


def test_negative_indices_count_top_level_layers_from_the_end(mlp):
    predictor, x = mlp
    penultimate = predictor.features(x, "-2")  # the dropout: identity in eval mode
    np.testing.assert_array_equal(penultimate, predictor.features(x, "3"))
    np.testing.assert_array_equal(penultimate, predictor.features(x, "2"))
    # the last layer is the head: the logits `predict` reads
    logits = predictor.outputs(x).numpy()
    np.testing.assert_allclose(predictor.features(x, "-1"), logits, rtol=1e-6, atol=1e-6)
    assert predictor.features(x, "-5").shape == (64, 784)  # the Flatten
    assert resolve_layer(predictor.model, "-2") == "3"


def test_batching_gives_the_features_of_one_batch(mlp):
    predictor, x = mlp
    whole = predictor.features(x, "1", batch_size=256)
    np.testing.assert_allclose(predictor.features(x, "1", batch_size=7), whole, atol=1e-6)
    np.testing.assert_allclose(predictor.features(x, "1", batch_size=1), whole, atol=1e-6)
    with pytest.raises(DataError, match="batch_size"):
        predictor.features(x, "1", batch_size=0)
    assert not predictor.model.training  # eval mode is left as it was


def test_unknown_layer_says_did_you_mean_and_lists_the_layers(mlp):
    predictor, x = mlp
    with pytest.raises(RecipeError, match=r"unknown layer '11'; did you mean '1'.*layers: 0, 1, 2"):
        predictor.features(x, "11")
    with pytest.raises(RecipeError, match="negative indices run from -1 to -5"):
        predictor.features(x, "-6")
    model = nn.Sequential(OrderedDict(encoder=nn.Sequential(nn.Linear(4, 3)), head=nn.Linear(3, 2)))
    with pytest.raises(RecipeError, match=r"did you mean 'encoder'.*layers: encoder, encoder.0"):
        resolve_layer(model, "encodr")
    assert resolve_layer(model, "encoder.-1") == "encoder.0"


def test_layers_lists_names_types_shapes_params_and_aliases(mlp):
    predictor, _ = mlp
    rows = predictor.layers()
    assert [r["name"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [r["kind"] for r in rows] == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert [r["output_shape"] for r in rows] == [[784], [128], [128], [128], [10]]
    assert [r["params"] for r in rows] == [0, 784 * 128 + 128, 0, 0, 128 * 10 + 10]
    assert [r["alias"] for r in rows] == ["-5", "-4", "-3", "-2", "-1"]
    assert {r["calls"] for r in rows} == {1}


class _Branches(nn.Module):
    """A shared activation run twice, an in-place ReLU, an LSTM's tuple, a ModuleList."""

    def __init__(self) -> None:
        super().__init__()
        self.branches = nn.ModuleList([nn.Linear(4, 3), nn.Linear(4, 3)])
        self.act = nn.Tanh()
        self.mix = nn.Linear(6, 8)
        self.relu = nn.ReLU(inplace=True)
        self.rnn = nn.LSTM(2, 5, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.act(b(x)) for b in self.branches], dim=1)
        seq, _ = self.rnn(self.relu(self.mix(h)).reshape(len(x), 4, 2))
        return seq[:, -1]


def test_how_outputs_become_rows():
    torch.manual_seed(0)
    model, x = _Branches().eval(), torch.randn(10, 4)
    with torch.no_grad():
        second = torch.tanh(model.branches[1](x))
        mixed = model.mix(torch.cat([torch.tanh(model.branches[0](x)), second], dim=1))
        seq, _ = model.rnn(torch.relu(mixed).reshape(10, 4, 2))
    # a module run twice: its last call
    np.testing.assert_allclose(extract(model, x, "act"), second.numpy(), atol=1e-6)
    # the in-place ReLU after it does not rewrite what `mix` output
    np.testing.assert_allclose(extract(model, x, "mix"), mixed.numpy(), atol=1e-6)
    assert (extract(model, x, "mix") < 0).any()
    # a tuple (output, (h, c)): the first tensor, each sample's (4, 5) flattened
    np.testing.assert_allclose(extract(model, x, "rnn"), seq.reshape(10, 20).numpy(), atol=1e-6)
    with pytest.raises(RecipeError, match="name one of its members: branches.0, branches.1"):
        extract(model, x, "branches")
    rows = {r.name: r for r in list_layers(model, x[:1])}
    assert rows["act"].calls == 2 and rows["branches"].output_shape is None
    assert rows["rnn"].output_shape == [4, 5] and rows["rnn"].alias == "-1"


def test_cli_features_writes_npy_and_prints_its_shape(mlp, tmp_path):
    predictor, x = mlp
    inputs, out = tmp_path / "x.npy", tmp_path / "f.npy"
    np.save(inputs, x[:10])
    run_dir = str(predictor.run.run_dir)
    result = subprocess_cli(
        "features", run_dir, str(inputs), "--layer", "-2", "--out", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr
    data = last_json(result)
    assert data["shape"] == [10, 128] and data["layer"] == "3" and data["out"] == str(out)
    np.testing.assert_array_equal(np.load(out), predictor.features(x[:10], "-2"))
    # .csv: a header of feature names, one row per input
    csv = tmp_path / "f.csv"
    assert cli("features", run_dir, str(inputs), "--layer=1", "--out", str(csv)).returncode == 0
    assert csv.read_text().splitlines()[0].split(",")[:2] == ["f0", "f1"]
    table = np.loadtxt(csv, delimiter=",", skiprows=1)
    np.testing.assert_allclose(table, predictor.features(x[:10], "1"), rtol=1e-6, atol=1e-6)
    wrong = cli("features", run_dir, str(inputs), "--layer", "7", "--json")
    assert wrong.returncode == 2 and "unknown layer '7'" in last_json(wrong)["error"]
    assert cli("features", run_dir, str(inputs), "--layer", "1", "--out", "f.bin").returncode == 2


def test_models_layers_of_a_run_and_of_a_recipe(mlp):
    predictor, _ = mlp
    result = cli("models", "--layers", str(predictor.run.run_dir), "--json")
    assert result.returncode == 0, result.stderr
    assert last_json(result)["layers"] == json.loads(json.dumps(predictor.layers()))
    printed = cli("models", "--layers", str(predictor.run.run_dir))
    lines = [line for line in printed.stdout.splitlines() if "Dropout" in line]
    assert len(lines) == 1 and "-2" in lines[0] and "(128,)" in lines[0]
    recipe = EXAMPLES / "mnist_cnn_bn.yaml"
    result = cli("models", "--layers", str(recipe), "--set", "model.dense=[32]", "--json")
    assert result.returncode == 0, result.stderr
    data = last_json(result)
    rows = {r["name"]: r for r in data["layers"]}
    assert data["model"] == "cnn" and rows["0"]["output_shape"] == [32, 26, 26]
    assert rows["6"]["kind"] == "Flatten" and rows["6"]["output_shape"] == [64 * 5 * 5]
    assert rows["9"]["alias"] == "-2" and rows["9"]["output_shape"] == [32]


def test_text_run_features_and_layers(tmp_path):
    """A tiny bidirectional LSTM (~4 s): token ids in, the packed recurrence padded back."""
    overrides = [
        *TINY, "model.hidden=8", "model.embedding_dim=8", "data.test_size=0.02",
    ]  # fmt: skip
    run = trainlab.train(EXAMPLES / "polarity_bilstm.yaml", overrides, out=tmp_path / "r")
    predictor = trainlab.load(run.run_dir)
    texts = ["a good movie", "bad", "not bad at all , really a fine film"]
    tokens = predictor._prepare(texts)
    with torch.no_grad():
        pooled = predictor.model.encode(tokens).numpy()
    np.testing.assert_allclose(predictor.features(texts, "attention"), pooled, atol=1e-6)
    seq = predictor.features(texts, "rnn").reshape(3, 56, 16)
    lengths = (tokens != 0).sum(1).numpy()
    for row, n in zip(seq, lengths, strict=True):
        assert np.abs(row[:n]).sum(1).min() > 0 and not row[n:].any()  # padding stays zero
    rows = {r["name"]: r for r in predictor.layers()}
    assert rows["embedding"]["output_shape"] == [56, 8] and rows["rnn"]["output_shape"] == [56, 16]


def test_recipe_yaml_is_not_a_run_dir(tmp_path):
    """`--set` is for recipes: a run directory's model is listed as it was trained."""
    run_dir = tmp_path / "bc"
    path = tmp_path / "bc.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "breast_cancer"}, "model": "mlp"}))
    trainlab.train(path, ["train.epochs=1"], out=run_dir)
    result = cli("models", "--layers", str(run_dir), "--set", "model.hidden=[3]")
    assert result.returncode == 2 and "--set" in result.stderr
