"""Text models: packed sequences make logits independent of padding; real-data training."""

from __future__ import annotations

import pytest
import torch

import trainlab
from trainlab.errors import RecipeError
from trainlab.models import MODELS
from trainlab.tasks import TaskInfo

from ..conftest import EXAMPLES

TEXT = TaskInfo(
    "multiclass",
    2,
    (12,),
    ["neg", "pos"],
    features={"kind": "text", "vocab_size": 50, "pad_index": 0, "max_len": 12},
)


def _build(name: str, **params) -> torch.nn.Module:
    torch.manual_seed(0)
    entry = MODELS.get(name)
    return entry.builder(entry.params(**params), TEXT).eval()


def _sentences() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    lengths = [12, 7, 3, 1]
    x = torch.zeros(4, 12, dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(1, 50, (n,))
    padded = torch.cat([x, torch.zeros(4, 9, dtype=torch.long)], dim=1)
    return x, padded


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "mean_max", "attention"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_packed_birnn_logits_do_not_depend_on_padding(cell, pooling):
    model = _build("text_rnn", cell=cell, pooling=pooling, hidden=8, embedding_dim=6, layers=2)
    x, padded = _sentences()
    assert torch.allclose(model(x), model(padded), atol=1e-6)
    # … and a sentence's logits do not depend on the other sentences in its batch
    assert torch.allclose(model(x[1:2, :7]), model(x)[1:2], atol=1e-6)


def test_birnn_last_pooling_reads_both_directions():
    model = _build("text_rnn", hidden=8, embedding_dim=6, pooling="last")
    x, _ = _sentences()
    encoded = model.encode(x)
    assert encoded.shape == (4, 16)
    # the backward direction's final state summarizes the sentence from its first token
    out, _ = model.rnn(model.embedding(x[1:2, :7]))
    assert torch.allclose(encoded[1, 8:], out[0, 0, 8:], atol=1e-6)
    assert torch.allclose(encoded[1, :8], out[0, -1, :8], atol=1e-6)


def test_birnn_mean_max_pooling_concatenates_mean_and_max_over_real_tokens():
    model = _build("text_rnn", hidden=8, embedding_dim=6, pooling="mean_max")
    x, _ = _sentences()
    encoded = model.encode(x)
    assert encoded.shape == (4, 32) and model.head.in_features == 32
    out, _ = model.rnn(model.embedding(x[1:2, :7]))  # sentence 1 has 7 real tokens
    assert torch.allclose(encoded[1, :16], out[0].mean(0), atol=1e-6)
    assert torch.allclose(encoded[1, 16:], out[0].max(0).values, atol=1e-6)


def test_text_cnn_logits_do_not_depend_on_padding_and_accept_short_inputs():
    model = _build("text_cnn", embedding_dim=6, filters=4, widths=[2, 3, 5])
    x, padded = _sentences()
    assert torch.allclose(model(x), model(padded), atol=1e-6)
    assert model(x[:, :2]).shape == (4, 2)  # shorter than the widest filter


def test_text_models_refuse_non_text_data(digits_recipe):
    digits_recipe["model"] = {"name": "text_rnn"}
    with pytest.raises(RecipeError, match="text dataset"):
        trainlab.train(digits_recipe)


@pytest.fixture(scope="module")
def polarity() -> tuple[torch.Tensor, ...]:
    """rt-polarity tokenized as the example recipe does: 3,000 training sentences, test split."""
    from trainlab.prepare import prepare

    prepared = prepare(trainlab.load_recipe(EXAMPLES / "polarity_textcnn.yaml"))
    x_train, y_train = prepared.tensors("train", limit=3000)
    x_test, y_test = prepared.tensors("test")
    return prepared.info, x_train, y_train, x_test, y_test


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("text_cnn", {"embedding_dim": 32, "filters": 32, "widths": [1, 2, 3]}),
        ("text_rnn", {"embedding_dim": 32, "hidden": 32, "pooling": "max"}),
    ],
)
def test_text_models_learn_real_rt_polarity(polarity, name, params):
    info, x_train, y_train, x_test, y_test = polarity
    assert info.features["kind"] == "text" and x_train.dtype == torch.long
    torch.manual_seed(0)
    entry = MODELS.get(name)
    model = entry.builder(entry.params(init="keras", **params), info)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        model.train()
        for i in range(0, len(order), 50):
            idx = order[i : i + 50]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy >= 0.60  # chance is 0.50; 2 epochs on 3,000 sentences


@pytest.mark.slow
@pytest.mark.parametrize("example", ["polarity_bilstm.yaml", "polarity_textcnn.yaml"])
def test_polarity_examples_reach_076(tmp_path, example):
    run = trainlab.train(EXAMPLES / example, out=tmp_path / "run")
    # issue 4's bar is 0.76, judged over seeds by bench/text_refit.py. Seed 0, the refit
    # on all 8,529 non-test sentences: BiLSTM 0.7623, text CNN 0.7651 (1 thread) /
    # 0.7689 (2); over seeds 0-2 0.762-0.776 and 0.752-0.765. One run may land anywhere
    # in that spread on another machine, so the floor is below the spread, not at it.
    assert run.metrics["test_accuracy"] >= 0.74
    assert not [k for k in run.metrics if k.startswith("val_")]  # no validation split
    assert run.history[-1]["epoch"] == run.recipe.train.epochs
