"""`--quantize int8`: dynamic int8 Linear/LSTM/GRU layers, close to float, rebuilt exactly
from float weights at load, and a clear error where there is nothing to quantize."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as nnqd

import trainlab
from trainlab.compress import quantize
from trainlab.compress.methods import METHODS, MethodOptions
from trainlab.compress.quantize import calibrate_static, plan, quantize_for_inference
from trainlab.compress.source import load_source
from trainlab.errors import RecipeError
from trainlab.models.layers import MixtureOfExperts
from trainlab.models.text import TextRNN, TextRNNParams

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _train(recipe: str, overrides: list[str], out, tmp) -> None:
    """A real run trained under its own runs folder and index (as conftest's fixture)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINLAB_RUNS", str(tmp / "runs"))
        mp.setenv("TRAINLAB_STORE", f"sqlite:///{tmp / 'index.db'}")
        trainlab.train(EXAMPLES / recipe, overrides, out=out)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    """The seed MNIST MLP after one epoch (a second on one thread)."""
    tmp = tmp_path_factory.mktemp("int8_mlp")
    _train("mnist_mlp_dropout.yaml", ["train.epochs=1"], tmp / "src", tmp)
    return tmp / "src"


@pytest.fixture(scope="module")
def mlp_int8(mlp_run):
    """The source and the int8 method's result on it."""
    source = load_source(mlp_run)
    build = METHODS.get("int8").builder
    return source, build(copy.deepcopy(source.model), None, source.ctx, MethodOptions())


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """The seed MNIST CNN, narrowed (8 and 16 channels, dense 32) and trained one epoch."""
    tmp = tmp_path_factory.mktemp("int8_cnn")
    small = ["train.epochs=1", "model.channels=[8, 16]", "model.dense=[32]", "techniques=[]"]
    _train("mnist_cnn_bn.yaml", small, tmp / "src", tmp)
    return tmp / "src"


def _outputs(model: nn.Module, source, split: str = "test") -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x) for x, _ in source.ctx.prepared.batches(split)])


def test_int8_mlp_linear_layers_are_dynamic_int8_and_close_to_float(mlp_int8):
    source, result = mlp_int8
    # flatten → Linear 784x128 → ReLU → Dropout → Linear 128x10 (under 4096 weights)
    assert type(result.model[1]) is nnqd.Linear and type(result.model[4]) is nn.Linear
    assert [e["name"] for e in result.details["quantized"]] == ["1"]
    assert [(e["name"], e["reason"][:6]) for e in result.details["float"]] == [("4", "under ")]
    assert result.details["engine"] in torch.backends.quantized.supported_engines
    assert result.details["warnings"]  # torch 2.13 deprecates torch.ao: recorded, not shown
    assert any("float weights" in note for note in result.notes)
    p_float = torch.softmax(_outputs(source.model, source), 1)
    p_int8 = torch.softmax(_outputs(result.model, source), 1)
    assert (p_float - p_int8).abs().max() < 0.05
    assert (p_float.argmax(1) == p_int8.argmax(1)).float().mean() >= 0.99


def test_int8_scores_through_the_context_and_loses_little(mlp_int8):
    source, result = mlp_int8
    metrics = source.ctx.metrics(result.model, "test")
    assert math.isfinite(metrics["test_loss"]) and 0.5 < metrics["test_accuracy"] <= 1
    float_test = source.ctx.score(source.model, "test")
    assert abs(metrics["test_accuracy"] - float_test) <= 0.005
    score = result.details["score"]
    assert score["split"] == "val" and abs(score["int8"] - score["float"]) <= 0.005
    assert result.met_target


def test_quantize_for_inference_on_fresh_float_weights_equals_the_method(mlp_run, mlp_int8):
    _, result = mlp_int8
    fresh = load_source(mlp_run)  # the float weights read again from model.safetensors
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = quantize_for_inference(fresh.model)
    assert caught == []  # torch.ao's deprecation warnings are not shown at load
    assert torch.equal(_outputs(loaded, fresh), _outputs(result.model, fresh))
    assert all(not type(m).__module__.startswith("torch.ao") for m in fresh.model.modules())


def test_int8_takes_no_amount(mlp_int8):
    source, _ = mlp_int8
    with pytest.raises(RecipeError, match="no amount"):
        METHODS.get("int8").builder(source.model, 0.5, source.ctx, MethodOptions())


def test_with_static_int8_off_a_conv_run_gets_int8_linear_and_float_convolutions(
    cnn_run, monkeypatch
):
    monkeypatch.setattr(quantize, "STATIC_CONV_SHIPPED", False)
    source = load_source(cnn_run)
    result = METHODS.get("int8").builder(source.model, None, source.ctx, MethodOptions())
    kinds = [type(m) for m in result.model]
    assert kinds.count(nn.Conv2d) == 2 and kinds.count(nnqd.Linear) == 1  # 400x32; 32x10 float
    reasons = {e["name"]: e["reason"] for e in result.details["float"]}
    assert reasons["0"].startswith("convolution: static int8") and "3.0x" in reasons["0"]
    assert any(note.startswith("Convolutions stay float (0, 3)") for note in result.notes)
    assert "calibration" not in result.details  # no static int8


def test_static_int8_rebuilds_exactly_from_its_recorded_calibration(cnn_run, monkeypatch):
    monkeypatch.setattr(quantize, "STATIC_CONV_SHIPPED", True)
    source = load_source(cnn_run)
    options = MethodOptions(calibration_batches=4)
    result = METHODS.get("int8").builder(source.model, None, source.ctx, options)
    calibration = json.loads(json.dumps(result.details["calibration"]))  # as a run stores it
    assert calibration["batches"] == 4 and calibration["engine"] == result.details["engine"]
    int8 = {e["name"] for e in result.details["quantized"]}
    assert {"0", "3", "7"} <= int8  # both convolutions (their batch norms folded in), dense
    fresh = load_source(cnn_run)
    loaded = quantize_for_inference(fresh.model, calibration)
    assert torch.equal(_outputs(loaded, fresh), _outputs(result.model, fresh))
    agree = (_outputs(loaded, fresh).argmax(1) == _outputs(fresh.model, fresh).argmax(1)).float()
    assert agree.mean() >= 0.99
    score = result.details["score"]
    assert abs(score["int8"] - score["float"]) <= 0.01 and result.met_target


def test_an_untraceable_conv_model_falls_back_to_dynamic_int8(cnn_run, monkeypatch):
    def untraceable(*args):
        raise torch.fx.proxy.TraceError("symbolically traced variables cannot be used as inputs")

    monkeypatch.setattr(quantize, "STATIC_CONV_SHIPPED", True)
    monkeypatch.setattr(quantize, "_prepare_static", untraceable)
    source = load_source(cnn_run)
    result = METHODS.get("int8").builder(source.model, None, source.ctx, MethodOptions())
    assert type(result.model[0]) is nn.Conv2d and "calibration" not in result.details
    assert result.details["static_conv"] == "static int8 needs an FX-traceable model (TraceError)"
    assert any("FX-traceable" in note for note in result.notes)


def test_static_calibration_refuses_a_model_fx_cannot_trace():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) if x.sum() > 0 else x  # data-dependent: untraceable

    with pytest.raises(torch.fx.proxy.TraceError):
        calibrate_static(Branchy().eval(), [(torch.rand(4, 2, 8), None)], 1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_text_rnn_packed_lstm_and_gru_are_quantized(cell):
    torch.manual_seed(0)
    params = TextRNNParams(embedding_dim=16, hidden=32, cell=cell, pooling="attention")
    model = TextRNN(vocab=60, pad=0, output_dim=2, p=params).eval()
    tokens = torch.randint(1, 60, (32, 12))
    tokens[:, 7:] = 0  # right padding: the packed path
    q = quantize_for_inference(model)
    kinds = {n: type(m) for n, m in q.named_modules()}
    assert kinds["rnn"] is (nnqd.LSTM if cell == "lstm" else nnqd.GRU)
    assert kinds["attention.proj"] is nnqd.Linear  # 64x64: the smallest Linear int8 takes
    assert kinds["attention.score"] is kinds["head"] is nn.Linear  # 1x64, 2x64: too small
    quantized, kept = plan(model)
    assert [e["name"] for e in quantized] == ["rnn", "attention.proj"]
    reasons = {e["name"]: e["reason"].split(":")[0] for e in kept}
    assert reasons == {"embedding": "table lookup", "attention.score": "under 4096 weights",
                       "head": "under 4096 weights"}  # fmt: skip
    with torch.no_grad():
        diff = (torch.softmax(q(tokens), 1) - torch.softmax(model(tokens), 1)).abs().max()
    assert diff < 0.02


def test_convolutions_stay_float_with_the_static_finding():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 3))
    quantized, kept = plan(model)
    assert [e["name"] for e in quantized] == ["3"]
    reasons = {e["name"]: e["reason"] for e in kept}
    assert reasons["0"].startswith("convolution: static int8")
    assert reasons["1"].startswith("normalization")
    q = quantize_for_inference(model.eval())
    assert type(q[0]) is nn.Conv2d and type(q[3]) is nnqd.Linear
    assert q(torch.rand(2, 1, 6, 6)).shape == (2, 3)


def test_small_linear_layers_stay_float_unless_all_are_small():
    model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 2)).eval()
    q = quantize_for_inference(model)
    assert type(q[0]) is nnqd.Linear and type(q[2]) is nn.Linear
    tiny = quantize_for_inference(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    assert type(tiny[0]) is type(tiny[2]) is nnqd.Linear  # int8 as asked, though no faster


def test_mixture_of_experts_router_stays_float():
    model = nn.Sequential(nn.Linear(8, 8), MixtureOfExperts(8, 4, experts=3, top_k=1)).eval()
    q = quantize_for_inference(model)
    assert type(q[0]) is nnqd.Linear and type(q[1].router) is nn.Linear
    kept = {e["name"]: e["reason"] for e in plan(model)[1]}
    assert kept["1.router"].startswith("mixture-of-experts router")
    assert q(torch.rand(5, 8)).shape == (5, 4)


def test_a_model_without_a_quantizable_layer_is_a_one_line_recipe_error():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Conv1d(4, 4, 3))
    with pytest.raises(RecipeError) as err:
        quantize_for_inference(model)
    message = str(err.value)
    assert "\n" not in message and "'Sequential'" in message and "--prune" in message
    assert "Conv1d, Embedding" in message


def test_an_int8_model_is_not_quantized_twice():
    q = quantize_for_inference(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    with pytest.raises(RecipeError, match="already quantized"):
        quantize_for_inference(q)


def test_a_model_off_the_cpu_is_refused():
    with pytest.raises(RecipeError, match="device cpu"):
        quantize_for_inference(nn.Sequential(nn.Linear(4, 2, device="meta")))


@pytest.mark.slow
def test_polarity_bilstm_int8_keeps_its_accuracy(tmp_path):
    """The shipped BiLSTM recipe, one epoch: the LSTM, attention and head are int8."""
    _train("polarity_bilstm.yaml", ["train.epochs=1"], tmp_path / "src", tmp_path)
    source = load_source(tmp_path / "src")
    result = METHODS.get("int8").builder(source.model, None, source.ctx, MethodOptions())
    assert type(result.model.rnn) is nnqd.LSTM
    logits_float, logits_int8 = _outputs(source.model, source), _outputs(result.model, source)
    agree = (logits_float.argmax(1) == logits_int8.argmax(1)).float().mean()
    assert agree >= 0.99
    drop = source.ctx.score(source.model, "test") - source.ctx.score(result.model, "test")
    assert drop <= 0.005
