"""The two artifact formats of `trainlab export`: how a model is written, checked and run.

`pt2`: `torch.export.export` with a dynamic batch dimension, saved with
`torch.export.save` (no dependency beyond torch). `onnx`: `torch.onnx.export(...,
dynamo=True)` from the same traced program, checked with `onnx.checker`, run with
onnxruntime (the `onnx` extra). Both take one input, named `input`, and give one output,
named `output`; only the batch dimension is dynamic.

Before tracing, `exportable` swaps in a model's export-friendly equivalent where it has
one (`export_friendly()`: text_rnn's packed RNN becomes `PaddedRecurrence`, same
outputs) and refuses, naming the layer, what torch.export cannot trace (int8 layers).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainlab.errors import RecipeError, RunError

INPUT_NAME, OUTPUT_NAME = "input", "output"
#: The packages `--format onnx` needs (pyproject's `onnx` extra).
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
ONNX_INSTALL = "pip install 'trainlab[onnx]'"

#: A loaded artifact: model-input array in, model-output array out.
Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Format:
    """One artifact format: its file name and how to write and to run that file."""

    name: str
    filename: str
    runtime: str  # what runs the artifact in the parity check (and in a consumer)
    save: Callable[[nn.Module, torch.Tensor, Path], None]
    load: Callable[[Path, int], Runner]


def require_onnx() -> None:
    """A RecipeError naming the install command when the onnx extra is missing."""
    import importlib.util

    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise RecipeError(
            f"--format onnx needs {', '.join(missing)} (the onnx extra): {ONNX_INSTALL}; "
            "or export with --format pt2, which needs only torch"
        )


def exportable(model: nn.Module, description: str) -> nn.Module:
    """The module to trace for `model`: its export-friendly equivalent when it has one.

    A RunError names the first layer torch.export cannot trace and why: int8 layers
    (`trainlab compress --quantize int8`) keep their weights in packed C++ objects of the
    quantized engine (`torch.classes.quantized.*`), which torch.export does not trace.
    """
    for name, module in model.named_modules():
        where = type(module).__module__
        if where.startswith("torch.") and ".quantized" in where:  # ao.nn(.intrinsic).quantized
            kind = f"{where}.{type(module).__qualname__}"
            raise RunError(
                f"{description} is int8-quantized and cannot be exported: layer "
                f"'{name or type(model).__name__}' ({kind}) holds its int8 weights in packed "
                "quantized-engine objects that torch.export cannot trace; export the float "
                "run it was compressed from (compression.source in its recipe.yaml), or "
                "compress again without --quantize and export that run"
            )
    friendly = getattr(model, "export_friendly", None)
    return friendly() if callable(friendly) else model


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings and log lines (they go to the terminal otherwise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def trace(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """`module` traced by torch.export with a dynamic batch dimension (eval mode).

    A RunError with torch's own first line when it cannot be traced.
    """
    batch = torch.export.Dim("batch", min=1)
    module.eval()
    try:
        with _quiet(), torch.no_grad():
            return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # torch raises many types; the user needs its message
        raise RunError(
            f"torch.export cannot trace {type(module).__name__}: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def save_pt2(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Trace `module` and write its ExportedProgram to `path` (torch.export.save)."""
    program = trace(module, example)
    with _quiet():
        torch.export.save(program, str(path))


def load_pt2(path: Path, threads: int) -> Runner:
    """Run an ExportedProgram file written by `save_pt2` (our own file: torch.export.load
    unpickles parts of it, so only artifacts one made are to be loaded)."""
    with _quiet():
        program = torch.export.load(str(path))
    module = program.module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return run


def save_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Export `module` to ONNX through torch.export (dynamo=True), dynamic batch, and
    check the file with `onnx.checker`."""
    require_onnx()
    import onnx

    batch = torch.export.Dim("batch", min=1)
    module.eval()
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                module, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
            )  # fmt: skip
            program.save(str(path))
    except Exception as exc:  # the exporter wraps torch.export's and its own errors
        raise RunError(
            f"ONNX export of {type(module).__name__} failed: {_first_line(exc)}"
        ) from None
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise RunError(
            f"the exported ONNX file is invalid (onnx.checker): {_first_line(exc)}"
        ) from None


def load_onnx(path: Path, threads: int) -> Runner:
    """An onnxruntime CPU session over `path` with `threads` intra-op threads."""
    require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x)})[0]

    return run


FORMATS: dict[str, Format] = {
    "pt2": Format("pt2", "model.pt2", "torch.export.load", save_pt2, load_pt2),
    "onnx": Format("onnx", "model.onnx", "onnxruntime", save_onnx, load_onnx),
}


def get_format(name: str) -> Format:
    """The format called `name`, or a RecipeError listing the formats."""
    try:
        return FORMATS[name]
    except KeyError:
        raise RecipeError(
            f"unknown export format {name!r}; choose one of {', '.join(FORMATS)}"
        ) from None


def runner(fmt: Format, path: Path, threads: int) -> Runner:
    """The artifact at `path` loaded for running (the parity check's artifact runner)."""
    return fmt.load(path, threads)
