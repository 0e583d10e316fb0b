"""Every registered architecture exports in both formats with its outputs intact; text_rnn's
export-friendly recurrence gives the packed model's outputs exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.deploy.export_formats import FORMATS, exportable, runner
from trainlab.deploy.parity import differences
from trainlab.errors import RunError
from trainlab.models import MODELS
from trainlab.tasks import TaskInfo

TEXT = TaskInfo(
    "multiclass", 2, (12,), ["neg", "pos"],
    features={"kind": "text", "vocab_size": 50, "pad_index": 0, "max_len": 12},
)  # fmt: skip
IMAGE = TaskInfo("multiclass", 3, (1, 12, 12), None)
RGB = TaskInfo("multiclass", 3, (3, 32, 32), None)
TABLE = TaskInfo(
    "binary", 1, (6,), None,
    features={"kind": "tabular", "numeric": 4, "continuous": 4, "cardinalities": [3, 5],
              "categorical_names": ["a", "b"]},
)  # fmt: skip
REGRESSION = TaskInfo("regression", 1, (5,), None)

#: (architecture, task, hyper-parameters): the smallest model of each; every registered
#: architecture must appear (test_every_registered_architecture_is_covered).
CASES = [
    ("mlp", REGRESSION, {"hidden": [8], "norm": "batch"}),
    ("mlp", TABLE, {"hidden": [8], "numeric_embedding": {"dim": 4, "frequencies": 4}}),
    ("mlp", IMAGE, {"hidden": [8, 8], "moe": {"layer": 0, "experts": 3, "top_k": 2}}),
    ("cnn", IMAGE, {"channels": [4, 8], "dense": [8], "norm": "batch"}),
    ("resnet", IMAGE, {"depth": 8, "width": 0.25}),
    ("vgg_small", IMAGE, {}),
    ("text_rnn", TEXT, {"hidden": 4, "embedding_dim": 3, "layers": 2, "pooling": "attention"}),
    ("text_rnn", TEXT, {"hidden": 4, "embedding_dim": 3, "cell": "gru", "pooling": "last"}),
    ("text_cnn", TEXT, {"embedding_dim": 4, "filters": 3, "widths": [2, 3]}),
    ("wide_deep", TABLE, {"crosses": [["a", "b"]], "hidden": [8], "norm": "batch"}),
    ("resnet18", RGB, {}),
    pytest.param("resnet34", RGB, {}, marks=pytest.mark.slow),
    pytest.param("resnet50", RGB, {}, marks=pytest.mark.slow),
    pytest.param("vgg16", RGB, {}, marks=pytest.mark.slow),
]


def _inputs(info: TaskInfo, n: int = 6) -> torch.Tensor:
    """Inputs of the model's kind: token ids with real padding, table rows with index
    columns (one out of range: unknown), random images."""
    g = torch.Generator().manual_seed(0)
    if info is TEXT:
        x = torch.randint(1, 50, (n, 12), generator=g)
        x[1, 5:] = 0
        x[2, 1:] = 0
        return x
    if info is TABLE:
        cats = torch.randint(0, 7, (n, 2), generator=g).float()
        return torch.cat([torch.randn(n, 4, generator=g), cats], dim=1)
    return torch.randn(n, *info.input_shape, generator=g)


def _build(name: str, info: TaskInfo, params: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    entry = MODELS.get(name)
    model = entry.builder(entry.params(**params), info).eval()
    for m in model.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def test_every_registered_architecture_is_covered():
    covered = {c.values[0] if hasattr(c, "values") else c[0] for c in CASES}
    assert {entry.name for entry in MODELS} <= covered


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
@pytest.mark.parametrize(("name", "info", "params"), CASES)
def test_architecture_exports_with_dynamic_batch_and_equal_outputs(
    tmp_path, fmt, name, info, params
):
    model = _build(name, info, params)
    x = _inputs(info)
    with torch.no_grad():
        reference = model(x).numpy()
    spec = FORMATS[fmt]
    path = tmp_path / spec.filename
    spec.save(exportable(model, name), x[:2], path)
    run = runner(spec, path, 1)
    for rows in (x, x[:1], x[:5]):  # traced at 2 rows: other batch sizes run too
        got = run(rows.numpy())
        assert got.shape == reference[: len(rows)].shape
        _, _, used, outside = differences(reference[: len(rows)], got, rtol=1e-4, atol=1e-5)
        assert used <= 1 and not outside.any(), (name, fmt, used)


def _static_int8(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Static int8 through FX, as `compress --quantize int8` makes it for conv models."""
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (x,))
        prepared(x)
        return convert_fx(prepared)


def test_int8_layers_are_refused_naming_the_layer_and_the_reason():
    from trainlab.compress.quantize import quantize_for_inference

    dynamic = quantize_for_inference(_build("mlp", IMAGE, {"hidden": [128]}))
    with pytest.raises(RunError, match=r"layer '1' \(torch\.ao\.nn\.quantized\..*Linear\).*packed"):
        exportable(dynamic, "run 'q'")
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(400, 3)).eval()  # fmt: skip
    static = _static_int8(conv, _inputs(IMAGE))
    with pytest.raises(RunError, match=r"layer '0' \(.*quantized.*ConvReLU2d\).*cannot trace"):
        exportable(static, "run 'q'")


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "mean_max", "attention"])
@pytest.mark.parametrize(("cell", "layers", "bidirectional"),
                         [("lstm", 2, True), ("gru", 1, True), ("lstm", 1, False)])  # fmt: skip
def test_padded_recurrence_gives_the_packed_text_rnn_outputs(pooling, cell, layers, bidirectional):
    model = _build("text_rnn", TEXT, {"hidden": 5, "embedding_dim": 4, "pooling": pooling,
                   "cell": cell, "layers": layers, "bidirectional": bidirectional})  # fmt: skip
    x = _inputs(TEXT, 8)
    x[3] = 0  # an empty sentence: length 1, like packing's clamp
    x[4, :] = torch.arange(1, 13)  # no padding at all
    keys = list(model.state_dict())
    friendly = model.export_friendly()
    with torch.no_grad():
        packed, padded = model(x), friendly(x)
    assert torch.allclose(packed, padded, atol=1e-6)
    # same parameters, not copies: the export computes the trained weights
    assert {id(p) for p in friendly.parameters()} == {id(p) for p in model.parameters()}
    assert list(model.state_dict()) == keys  # the model itself is unchanged


def test_wide_deep_outputs_do_not_depend_on_the_batch_they_are_in():
    model = _build("wide_deep", TABLE, {"crosses": [["a", "b"]], "hidden": [8]})
    x = _inputs(TABLE, 5)
    with torch.no_grad():
        whole = model(x)
        one_by_one = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(whole.numpy(), one_by_one.numpy(), atol=1e-6)
