"""The model behind `trainlab serve`: a run's torch model or an export folder's artifact.

A run directory (run.json) is served by its torch model, loaded by `trainlab.predict.load`;
an export folder (export.json, written by `trainlab export`) by onnxruntime (model.onnx)
or `torch.export.load` (model.pt2). Every backend takes the same model-input arrays —
`trainlab.predict.InputEncoder` makes them from raw inputs with the run's fitted
preprocessing, copied into the export folder — and returns the model's raw outputs;
`ServedModel` turns those into predictions with the arithmetic `Predictor.predict` uses
(`engine.metrics`), so a served run answers exactly what `trainlab predict` answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

import trainlab
from trainlab.deploy.serve_inputs import input_kind, input_schema
from trainlab.errors import DataError, RunError
from trainlab.predict import InputEncoder
from trainlab.tasks import TaskInfo

#: Model inputs run through the torch model in chunks of this many rows (as `Predictor`).
TORCH_CHUNK = 1024


class Backend(Protocol):
    """Runs the model on a batch of model inputs and returns its raw outputs."""

    name: str

    @property
    def threads(self) -> int:
        """Intra-op CPU threads the model runs with."""
        ...

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs (logits, or regression values in training units) for inputs `x`."""
        ...


class TorchBackend:
    """A torch module in eval mode, without gradients, in chunks (`Predictor.outputs`).

    An ExportedProgram's module was traced in eval mode and refuses `.eval()`; it is
    passed in as it is (`name` "torch.export").
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, name: str = "torch"):
        self.model = model.eval() if name == "torch" else model
        self.device = device
        self.name = name

    @property
    def threads(self) -> int:
        """torch's intra-op thread count (process-wide)."""
        return torch.get_num_threads()

    @torch.no_grad()
    def run(self, x: np.ndarray) -> np.ndarray:
        """The module's outputs for `x`, as a float NumPy array."""
        xt = torch.as_tensor(x, device=self.device)
        chunks = [self.model(xt[i : i + TORCH_CHUNK]) for i in range(0, len(xt), TORCH_CHUNK)]
        out = torch.cat(chunks)
        return out.cpu().numpy()


class OnnxBackend:
    """An onnxruntime CPU session over model.onnx (the export's only runtime dependency)."""

    name = "onnxruntime"

    def __init__(self, path: Path, input_name: str, threads: int, dtype: str = "float32"):
        ort = _onnxruntime()
        self.session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in self.session.get_inputs()]
        self.input_name = input_name if input_name in names else names[0]
        self.dtype = np.dtype(dtype)
        self.threads = threads

    def run(self, x: np.ndarray) -> np.ndarray:
        """The session's first output for `x` (in the input dtype export.json names)."""
        return self.session.run(None, {self.input_name: x.astype(self.dtype, copy=False)})[0]


def session_options(threads: int) -> Any:
    """onnxruntime session options for serving: `threads` intra-op threads, one inter-op
    thread (one request at a time per worker), full graph optimization. The bench gives
    its bare session the same, so that it measures the service and not the settings."""
    ort = _onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise RunError(
            "serving model.onnx needs onnxruntime; install it with "
            "pip install 'trainlab[onnx]' (or serve the run directory itself)"
        ) from None
    return onnxruntime


@dataclass
class ServedModel:
    """A model ready to answer raw inputs: its encoder, its backend and what it is."""

    source: Path
    kind: str  # "run" or "export"
    backend: Backend
    encoder: InputEncoder
    metrics: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)  # export.json, for an export folder

    @property
    def info(self) -> TaskInfo:
        """What the model maps to (data.json): task kind, classes, input shape."""
        return self.encoder.info

    def model_input(self, raw: Any) -> tuple[np.ndarray, dict[str, int]]:
        """Raw inputs → the model's input array (as `InputEncoder.encode`), and for table
        runs the count of rows per column holding categories unseen in training."""
        enc = self.encoder
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused below
            if input_kind(enc) != "table":
                return enc.encode(raw), {}
            rows = enc.table_rows(raw)
            unseen = enc.preprocessor.unseen_categories(rows)
            x = np.asarray(enc.preprocessor.transform(rows), dtype=np.float32)
        return x, {column: count for column, (count, _) in unseen.items()}

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The backend's outputs for model inputs `x`.

        A DataError when an input or an output is not finite (numbers far outside
        anything seen in training overflow float32), naming the first such instance.
        """
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise DataError(
                f"instance {_first_bad(x)}: its values become infinite after the run's "
                "preprocessing (numbers far too large); send values like those trained on"
            )
        out = np.asarray(self.backend.run(x))
        if not np.isfinite(out).all():
            raise DataError(
                f"instance {_first_bad(out)}: the model's output is not finite (inputs far "
                "outside the training range); send values like those trained on"
            )
        return out

    def predict(self, raw: Any) -> dict[str, Any]:
        """{"predictions": one per instance} (and "unseen_categories": {column: rows}
        when a table row holds a category never seen in training; it is still predicted).

        A prediction is {"label", "class_index", "probabilities"} for classification
        (probabilities in class-index order), {"value"} for regression.
        """
        x, unseen = self.model_input(raw)
        answer: dict[str, Any] = {"predictions": self.decode(self.outputs(x))}
        if unseen:
            answer["unseen_categories"] = unseen
        return answer

    def decode(self, out: np.ndarray) -> list[dict[str, Any]]:
        """Model outputs → predictions, as `Predictor.predict` / `predict_proba` make them.

        In NumPy rather than through `engine.metrics`' torch functions: the same
        arithmetic (argmax, logit > 0, softmax, sigmoid, `values * scale + shift` in
        float64), without torch's per-call cost on a request's few rows — a torch softmax
        of (64, 2) took ~1 ms on a busy 2-core CPU. tests/deploy/test_serve.py checks
        both give the same answers.
        """
        return decode_outputs(out, self.info, self.encoder.labels)

    def metadata(self) -> dict[str, Any]:
        """What a client needs to call the service: recipe, metrics, input schema, version."""
        info = self.info
        facts = {
            "trainlab_version": trainlab.__version__,
            "source": str(self.source),
            "kind": self.kind,
            "backend": self.backend.name,
            "threads": self.backend.threads,
            "name": self.encoder.recipe.name,
            "target_kind": info.target_kind,
            "classes": info.classes,
            "input": input_schema(self.encoder),
            "output": _output_schema(info),
            "metrics": self.metrics,
            "recipe": self.encoder.recipe.to_dict(),
        }
        if self.export:
            facts["export"] = {k: self.export.get(k) for k in ("format", "parity", "source_run")}
        return facts


def decode_outputs(
    out: np.ndarray, info: TaskInfo, labels: Callable[[np.ndarray], list[Any]]
) -> list[dict[str, Any]]:
    """Raw outputs (N, k) → one prediction per row (`ServedModel.decode`)."""
    if info.target_kind == "regression":
        values = out
        shift, scale = np.asarray(info.target_shift), np.asarray(info.target_scale)
        if not (np.all(shift == 0.0) and np.all(scale == 1.0)):  # engine.metrics.unscale
            values = (out.astype(np.float64) * scale + shift).astype(out.dtype)
        flat = values.reshape(len(values), -1)
        return [{"value": v} for v in (flat[:, 0] if flat.shape[1] == 1 else flat).tolist()]
    z = out.astype(np.float32, copy=False)
    if info.target_kind == "binary":
        z = z.reshape(-1)
        index = (z > 0).astype(np.int64)
        with np.errstate(over="ignore"):
            p1 = 1.0 / (1.0 + np.exp(-z))
        proba = np.stack([1 - p1, p1], axis=1)
    else:
        index = z.argmax(axis=1)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        proba = e / e.sum(axis=1, keepdims=True)
    return [
        {"label": label, "class_index": i, "probabilities": probs}
        for label, i, probs in zip(labels(index), index.tolist(), proba.tolist(), strict=True)
    ]


def _first_bad(a: np.ndarray) -> int:
    """Index of the first row of `a` holding a non-finite value."""
    return int(np.argmax(~np.isfinite(a.reshape(len(a), -1)).all(axis=1)))


def _output_schema(info: TaskInfo) -> dict[str, Any]:
    if info.target_kind == "regression":
        return {"value": "number (a list of numbers for several targets)"}
    return {
        "label": "class name (the index when the run has no names)",
        "class_index": "integer, position in classes",
        "probabilities": f"{len(info.classes or []) or info.output_dim} numbers, by class index",
    }


def load_served(path: str | Path, threads: int | None = None) -> ServedModel:
    """The model of a run directory (run.json) or an export folder (export.json).

    `threads`: intra-op threads of the model (default: the run's `train.threads`, auto
    being the free cores now); `--workers N` gives each worker its share of the cores.
    """
    source = Path(path)
    if not source.is_dir():
        raise RunError(f"'{source}' not found; give a run directory or an export folder")
    if (source / "export.json").is_file():
        return _load_export(source, threads)
    if (source / "run.json").is_file():
        return _load_run(source, threads)
    raise RunError(
        f"'{source}' is neither a run directory (run.json) nor an export folder "
        "(export.json); give the folder `trainlab train` or `trainlab export` wrote"
    )


def _load_run(source: Path, threads: int | None) -> ServedModel:
    from trainlab import threads as thread_choice
    from trainlab.predict import load

    predictor = load(source)
    if threads is not None:
        thread_choice.apply(thread_choice.choose_threads(threads))
    backend = TorchBackend(predictor.model, predictor.device)
    return ServedModel(source, "run", backend, predictor.inputs, dict(predictor.run.metrics))


def _load_export(source: Path, threads: int | None) -> ServedModel:
    import yaml

    from trainlab.config.schema import validate_recipe
    from trainlab.data.preprocess import Preprocessor

    facts = _read_json(source / "export.json")
    recipe_file = source / "recipe.yaml"
    try:
        recipe = validate_recipe(yaml.safe_load(recipe_file.read_text("utf-8")), str(recipe_file))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RunError(f"'{recipe_file}' cannot be read ({exc}); export the run again") from None
    info = TaskInfo.from_dict(_read_json(source / "data.json"))
    # the artifact's own record of how outputs map to units wins over the copy of data.json
    if facts.get("target_shift") is not None and facts.get("target_scale") is not None:
        info.target_shift, info.target_scale = facts["target_shift"], facts["target_scale"]
    pre = Preprocessor.from_state_dict(_read_json(source / "preprocess.json"))
    encoder = InputEncoder(recipe, info, pre)
    metrics_file = source / "metrics.json"
    metrics = _read_json(metrics_file) if metrics_file.is_file() else {}
    backend = _export_backend(source, facts, recipe, threads)
    return ServedModel(source, "export", backend, encoder, metrics, facts)


def _export_backend(
    source: Path, facts: dict[str, Any], recipe: Any, n_threads: int | None
) -> Backend:
    """onnxruntime for model.onnx, the loaded ExportedProgram for model.pt2."""
    from trainlab import threads

    fmt = facts.get("format")
    requested = n_threads or recipe.train.threads
    n = threads.choose_threads(requested if isinstance(requested, int) else "auto").threads
    given = facts.get("input") or {}
    input_name, dtype = str(given.get("name", "input")), str(given.get("dtype", "float32"))
    name = str(facts.get("model_file") or f"model.{fmt}")
    if fmt == "onnx":
        return OnnxBackend(_artifact(source, name), input_name, n, dtype)
    if fmt == "pt2":
        threads.apply(threads.choose_threads(n))
        program = torch.export.load(str(_artifact(source, name)))
        return TorchBackend(program.module(), torch.device("cpu"), name="torch.export")
    raise RunError(f"'{source / 'export.json'}': unknown format {fmt!r}; expected onnx or pt2")


def _artifact(source: Path, name: str) -> Path:
    path = source / name
    if not path.is_file():
        raise RunError(f"'{source}' has export.json but no {name}; export the run again")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise RunError(f"'{path}' is missing; export the run again") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"'{path}' cannot be read ({exc}); export the run again") from None
