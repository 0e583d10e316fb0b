"""`trainlab models --summary`: parameters, FLOPs and activation memory, exactly."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from trainlab.cli import app
from trainlab.models import MODELS
from trainlab.models.summary import summarize
from trainlab.tasks import TaskInfo

from ..conftest import EXAMPLES


def test_summary_counts_parameters_flops_and_activation_bytes():
    info = TaskInfo("multiclass", 10, (1, 28, 28), None)
    model = MODELS.get("mlp").builder(MODELS.get("mlp").params(hidden=[128]), info)
    s = summarize(model, info, batch=32)
    assert s.params == 784 * 128 + 128 + 128 * 10 + 10
    assert s.flops_per_sample == 2 * (784 * 128 + 128 * 10)  # a multiply-add is 2 FLOPs
    # float32 outputs of Flatten (784), Linear (128), ReLU (128), Linear (10), batch of 32
    assert s.activation_bytes == 4 * 32 * (784 + 128 + 128 + 10)
    assert [r.kind for r in s.layers] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert s.layers[1].output_shape == [128] and s.layers[1].params == 784 * 128 + 128
    assert model.training  # the summary leaves the model's mode alone


def test_summary_counts_conv_flops_and_recurrent_flops():
    info = TaskInfo("multiclass", 10, (1, 8, 8), None)
    cnn = MODELS.get("cnn").builder(
        MODELS.get("cnn").params(channels=[4], pool="none", norm="none", dense=[]), info
    )
    conv_flops = 2 * (4 * 9) * 8 * 8  # 'same' 3x3 conv: 9 multiply-adds per output pixel
    assert summarize(cnn, info, 2).flops_per_sample == conv_flops + 2 * 4 * 64 * 10
    text = TaskInfo(
        "multiclass", 2, (10,), None, features={"kind": "text", "vocab_size": 30, "pad_index": 0}
    )
    rnn = MODELS.get("text_rnn").builder(
        MODELS.get("text_rnn").params(embedding_dim=4, hidden=3, bidirectional=False), text
    )
    x = torch.zeros(2, 10, dtype=torch.long)
    x[:, :6] = 5
    lstm = 2 * 4 * 3 * (4 + 3)  # four gates, input and hidden matrices, per token
    assert summarize(rnn, text, x).flops_per_sample == 6 * lstm + 2 * 3 * 2


def test_cli_models_summary_of_an_example_recipe():
    result = CliRunner().invoke(
        app, ["models", "--summary", str(EXAMPLES / "mnist_cnn_bn.yaml"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["model"] == "cnn" and data["batch_size"] == 32
    assert data["params"] == 122_154  # the seed's Keras model has 122,570 (conv biases)
    assert data["flops_per_sample"] > 2 * 18_432 * 11 * 11  # at least the second conv
    bad = CliRunner().invoke(app, ["models", "--summary", "missing.yaml"])
    assert bad.exit_code != 0 and "missing.yaml" in str(bad.exception)
