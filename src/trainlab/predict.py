"""Using a saved run without training: load, predict, evaluate, read inputs from files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainlab import setup
from trainlab.data.preprocess import Preprocessor
from trainlab.data.table import (
    SAMPLE_LINES,
    Table,
    looks_like_header,
    raw_rows,
    read_table,
    read_text,
)
from trainlab.engine.checkpoint import load_weights
from trainlab.engine.loop import Engine
from trainlab.engine.metrics import predictions, scores, unscale
from trainlab.engine.state import State
from trainlab.errors import DataError, RunError
from trainlab.features import example_input, extract, list_layers
from trainlab.prepare import prepare
from trainlab.runs import Run
from trainlab.store.rundir import RunDir
from trainlab.tasks import TaskInfo

if TYPE_CHECKING:
    from trainlab.config import Recipe


class InputEncoder:
    """Raw inputs → the model's input array through a run's fitted preprocessing, no model.

    What `Predictor` feeds its torch model, split out so that a model running elsewhere
    (onnxruntime or an ExportedProgram in `trainlab serve` of an export folder) gets
    exactly the same arrays from the same files (recipe, data.json, preprocess.json).
    """

    def __init__(self, recipe: Recipe, info: TaskInfo, pre: Preprocessor) -> None:
        self.recipe = recipe
        self.info = info
        self.preprocessor = pre

    def encode(self, x: Any) -> np.ndarray:
        """Raw inputs → the model's input: float32, int64 token ids for text.

        Accepts what the run was trained on: numeric arrays (a single sample or a batch),
        for tables also rows with column names (a `Table` read from a CSV with a header,
        a list of dicts, a dict of columns), for text runs strings.
        """
        pre = self.preprocessor
        if pre.kind == "text":
            return np.asarray(pre.transform(self.texts(x)), dtype=np.int64)
        if pre.from_table and pre.column_names:
            return np.asarray(pre.transform(self.table_rows(x)), dtype=np.float32)
        if isinstance(x, Table):
            names = pre.column_names or []
            if not names or not set(names) <= set(x.names):
                # a numeric CSV with its own header: columns are taken in file order
                x = Table([f"x{i}" for i in range(len(x.names))], x.rows, x.source)
                names = x.names
            x = raw_rows(x, names, ["numeric"] * len(names), ())
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        shape = tuple(pre.input_shape) if pre.input_shape is not None else self.info.input_shape
        arr = as_batch(arr, shape)
        if not np.isfinite(arr).all() and pre.p.get("fill") is None:
            raise DataError("input contains NaN or infinite values; clean or impute them first")
        return np.asarray(pre.transform(arr), dtype=np.float32)

    def table_rows(self, x: Any) -> np.ndarray:
        """Table inputs → the raw features preprocessing takes, by the run's column roles
        (runs saved before roles existed: by the preprocessor's column names and kinds)."""
        table = self.info.table or {}
        if table.get("schema"):
            from trainlab.data.roles import TableSchema, cells_by_column

            schema = TableSchema.from_dict(table["schema"])
            source = getattr(x, "source", "") or "input"
            return schema.encode(cells_by_column(x, schema.input_columns), source)
        pre = self.preprocessor
        return raw_rows(x, pre.column_names or [], pre.column_kinds or [], self.missing_markers())

    def unseen_categories(self, x: Any) -> dict[str, tuple[int, str]]:
        """Per categorical column of table inputs `x`: (rows, first value) unseen in training.

        Those rows still get predictions; their unseen cells are encoded as unknown.
        Empty for runs not trained on a table and for inputs without unseen categories.
        """
        pre = self.preprocessor
        if not (pre.from_table and pre.column_names):
            return {}
        return pre.unseen_categories(self.table_rows(x))

    def labels(self, preds: np.ndarray) -> list[Any]:
        """Predictions as users read them: class names (indices when the run has none)
        for classification, numbers for regression."""
        if self.info.target_kind == "regression":
            return np.asarray(preds).tolist()
        classes = self.info.classes
        return [classes[int(p)] if classes else int(p) for p in preds]

    def missing_markers(self) -> tuple[str, ...]:
        """The cell texts the run's table reader took as missing values."""
        from trainlab.data.table import DEFAULT_MISSING

        params = self.recipe.data.dataset.params
        return tuple(getattr(params, "missing", DEFAULT_MISSING))

    def texts(self, x: Any) -> np.ndarray:
        """Text inputs (a string, a Table's text column, any array) → (N,) strings."""
        if isinstance(x, str):
            items = [x]
        elif isinstance(x, Table):
            params = self.recipe.data.dataset.params
            column = getattr(params, "text_column", "text")
            items = x.column(column if column in x.names else x.names[0])
        else:
            items = [str(t) for t in np.asarray(x, dtype=object).reshape(-1)]
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out


class Predictor:
    """A trained model with its preprocessing, ready to predict raw inputs."""

    def __init__(
        self,
        run: Run,
        model: torch.nn.Module,
        info: TaskInfo,
        pre: Preprocessor,
        device: torch.device,
    ) -> None:
        self.run = run
        self.model = model
        self.info = info
        self.preprocessor = pre
        self.device = device

    @property
    def inputs(self) -> InputEncoder:
        """The raw-input encoder of this run's preprocessing (no model involved)."""
        return InputEncoder(self.run.recipe, self.info, self.preprocessor)

    def _prepare(self, x: Any) -> torch.Tensor:
        """Raw inputs → the model's input tensor, through the run's fitted preprocessing.

        Accepts what `InputEncoder.encode` does: numeric arrays (a single sample or a
        batch), for tables also rows with column names, for text runs strings.
        """
        return torch.as_tensor(self.inputs.encode(x), device=self.device)

    def _table_rows(self, x: Any) -> np.ndarray:
        return self.inputs.table_rows(x)

    def unseen_categories(self, x: Any) -> dict[str, tuple[int, str]]:
        """Per categorical column of table inputs `x`: (rows, first value) unseen in training.

        Those rows still get predictions; their unseen cells are encoded as unknown.
        Empty for runs not trained on a table and for inputs without unseen categories.
        """
        return self.inputs.unseen_categories(x)

    def labels(self, preds: np.ndarray) -> list[Any]:
        """`predict`'s output as users read it: class names (indices when the run has
        none) for classification, numbers for regression."""
        return self.inputs.labels(preds)

    def read_inputs(self, path: str | Path) -> Any:
        """Prediction inputs from `path`, read the way this run's training file was.

        A run trained on a `csv` dataset reads any file but .npy/.npz with the reader
        settings its training file was read with (data.json's `table.reader`: delimiter,
        header, encoding as detected; runs saved before: the recipe's, "auto" detecting
        again), whatever the extension (.csv, .tsv, .txt, .data, none); missing markers
        apply in `predict`; the target and dropped columns may be present. A `text` run
        reads .txt as one sentence a line and other tables with its recipe's delimiter
        and encoding. Other runs: the module's `read_inputs`.
        """
        path = Path(path)
        ds = self.run.recipe.data.dataset
        suffix = path.suffix.lower()
        if suffix in (".npy", ".npz") or not path.is_file() or ds.name not in ("csv", "text"):
            return read_inputs(path)
        params = ds.params
        if ds.name == "text":
            if suffix == ".txt" or (suffix in (".csv", ".tsv") and params.delimiter == "auto"):
                return read_inputs(path)
            return read_table(path, params.delimiter, True, params.encoding)
        reader = (getattr(self.info, "table", None) or {}).get("reader")
        return read_run_table(path, params, self.preprocessor.column_names or [], reader)

    def _missing_markers(self) -> tuple[str, ...]:
        return self.inputs.missing_markers()

    def _texts(self, x: Any) -> np.ndarray:
        return self.inputs.texts(x)

    @torch.no_grad()
    def outputs(self, x: Any, batch_size: int = 1024) -> torch.Tensor:
        """Model outputs for raw input rows: logits, or regression values in the targets'
        original units (un-scaled when the run standardized its targets)."""
        xt = self._prepare(x)
        self.model.eval()
        out = torch.cat([self.model(xt[i : i + batch_size]) for i in range(0, len(xt), batch_size)])
        if self.info.target_kind != "regression":
            return out
        return unscale(out, self.info.target_shift, self.info.target_scale).to(out.dtype)

    def predict(self, x: Any) -> np.ndarray:
        """Class indices for classification, values for regression.

        Indices number `info.classes` (the class names); `labels` turns them into names,
        as `trainlab predict` prints them.
        """
        return predictions(self.outputs(x), self.info.target_kind).cpu().numpy()

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities, shape (N, n_classes); classification only."""
        if self.info.target_kind == "regression":
            raise DataError("predict_proba is for classification runs; use predict")
        p = scores(self.outputs(x), self.info.target_kind)
        return np.stack([1 - p, p], axis=1) if p.ndim == 1 else p

    def features(self, x: Any, layer: str, batch_size: int = 256) -> np.ndarray:
        """Outputs of the module `layer` for raw inputs `x`: (N, features) float32.

        `x` is anything `predict` accepts; it goes through the run's preprocessing, then
        batches of `batch_size` through the model in eval mode without gradients, a hook
        recording `layer`'s output, each sample's flattened into one row. `layer` is a
        module name ("8", "features.3") or a negative index of a top-level child ("-2":
        the second-to-last, Keras' `get_layer(index=-2)`); `layers()` lists them. A tuple
        output gives its first tensor (features.py says how others are read). An unknown
        name is a RecipeError with the closest names.
        """
        return extract(self.model, self._prepare(x), layer, batch_size)

    def layers(self) -> list[dict[str, Any]]:
        """Every module `features` can read: name, type, output shape for one sample,
        parameters, calls per forward and negative-index alias (`LayerInfo`), measured by
        one forward of an input of the run's shape (token ids for text)."""
        example = example_input(self.info, self.device)
        return [row.to_dict() for row in list_layers(self.model, example)]

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Metrics on a split of the run's own dataset, rebuilt exactly as in training."""
        if split not in ("train", "val", "test"):
            raise DataError(f"split must be train, val or test (got {split!r})")
        # the saved preprocessing, not a refit: the split is exactly what the run was tested on
        prepared = prepare(
            self.run.recipe, self.device, preprocessor=self.preprocessor, check_finite=False
        )
        state = State(
            self.model, optimizer=None, loss_fn=prepared.build_loss(), device=self.device,
            max_epochs=0,
        )  # fmt: skip
        info = self.info
        engine = Engine(
            state, [], None, None, [], info.target_kind,
            target_shift=info.target_shift, target_scale=info.target_scale,
        )  # fmt: skip
        return engine.evaluate(split, prepared.batches(split))


def as_batch(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`arr` as a batch of samples of `shape`, or a DataError saying which layouts fit.

    Accepted: a batch (N, *shape), one sample `shape`, rows holding the same number of
    values (N, prod(shape)) or one such row, and for single-channel images (1, H, W) the
    layouts image users have: (N, H, W) and one (H, W) image.
    """
    n_features = math.prod(shape)
    if arr.shape == shape:
        return arr[None]
    if arr.shape[1:] == shape:
        return arr
    if len(shape) == 3 and shape[0] == 1:
        if arr.shape == shape[1:]:
            return arr[None, None]
        if arr.shape[1:] == shape[1:]:
            return arr[:, None]
    if arr.ndim == 1 and arr.size == n_features:
        return arr.reshape((1, *shape))
    if arr.ndim >= 2 and math.prod(arr.shape[1:]) == n_features:
        return arr.reshape((len(arr), *shape))
    accepted = [f"(N, {', '.join(map(str, shape))})", str(shape), f"(N, {n_features})"]
    if len(shape) == 3 and shape[0] == 1:
        accepted += [f"(N, {shape[1]}, {shape[2]})", f"({shape[1]}, {shape[2]})"]
    per_row = math.prod(arr.shape[1:]) if arr.ndim > 1 else arr.size
    raise DataError(
        f"input of shape {tuple(arr.shape)} has {per_row} features per row; the model "
        f"expects {n_features} (samples of shape {shape}); accepted: {', '.join(accepted)}"
    )


def load(run_dir: str | Path, device: str = "cpu") -> Predictor:
    """Load a finished (or last-good) run for prediction — no training, nothing unpickled."""
    run = Run.open(run_dir)
    rd = RunDir(run.run_dir)
    if not rd.weights.is_file():
        raise RunError(f"'{rd.path}' has no model.safetensors yet; train it to the end of an epoch")
    info = TaskInfo.from_dict(rd.read_json("data.json"))
    pre = Preprocessor.from_state_dict(rd.read_json("preprocess.json"))
    dev = torch.device(device)
    from trainlab import threads

    # the run's own thread setting (auto: the free cores now; threads.py)
    requested = run.recipe.train.threads
    threads.apply(threads.choose_threads(requested if isinstance(requested, int) else "auto"))
    model = setup.build_model(run.recipe, info).to(dev)
    load_weights(model, rd.weights, dev)
    model.eval()
    compression = run.recipe.compression
    if compression is not None and compression.quantize == "int8":
        # a quantized run stores float weights; int8 is rebuilt from them, exactly
        from trainlab.compress.quantize import quantize_for_inference

        model = quantize_for_inference(model, compression.calibration)
    return Predictor(run, model, info, pre, dev)


def read_inputs(path: str | Path) -> np.ndarray:
    """Read prediction inputs from .npy, .npz (array 'x', 'X' or the only one), .csv or .txt.

    A CSV whose first row is a header comes back as a `Table` (rows matched to the
    training columns by name), a numeric CSV without header as an array, a .txt of
    sentences as an array of strings (one per line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file '{path}' not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = next(
                    (k for k in ("x", "X", "inputs") if k in keys),
                    keys[0] if len(keys) == 1 else None,
                )
                if key is None:
                    raise DataError(f"'{path}' holds arrays {keys}; name the inputs 'x'")
                return z[key]
        if suffix in (".csv", ".tsv", ".txt"):
            return _read_text_input(path, suffix)
    except ValueError as exc:
        raise DataError(f"cannot read '{path}': {exc}") from None
    raise DataError(f"input file '{path}': unsupported type '{suffix}'; use .npy, .npz or .csv")


def read_run_table(
    path: str | Path, params: Any, features: list[str], reader: dict[str, Any] | None = None
) -> Table:
    """`path` read with a `csv` run's reader settings.

    `reader` is the training table's resolved `format` (delimiter, header, encoding);
    without it (runs saved before) `params`' delimiter, header, encoding, where "auto"
    detects again. The first row is a header when it holds a training column name;
    otherwise, unless the run was trained without header, when it looks like one
    (`looks_like_header`), so that a file of rows only is read as rows. Rows of exactly
    the training features take their names in training order, and for a run trained
    without header (columns c0, c1, …) rows of every column or of every column but the
    target get those names.
    """
    delimiter, header, encoding = _reader_settings(params, reader)
    probe = read_table(path, delimiter, False, encoding)
    fmt = probe.format
    if features and set(probe.rows[0]) & set(features):
        has_header = True
    elif header is False:
        has_header = False
    else:
        has_header = looks_like_header(probe.rows[: SAMPLE_LINES + 1])
    if has_header:
        return read_table(path, fmt["delimiter"], True, fmt["encoding"])
    width = len(probe.names)
    if width == len(features):
        return Table(list(features), probe.rows, probe.source, fmt)
    positions = [int(n[1:]) for n in (*features, params.target, *params.drop) if n[1:].isdigit()]
    full = [f"c{i}" for i in range(max(positions, default=-1) + 1)]
    if width == len(full) - 1 and params.target in full:
        return Table([n for n in full if n != params.target], probe.rows, probe.source, fmt)
    return probe


def _reader_settings(params: Any, reader: dict[str, Any] | None) -> tuple[str, Any, str]:
    """(delimiter, header, encoding) for reading a csv run's prediction files.

    The recorded settings win; a recorded utf-8 becomes "auto" again when the recipe said
    "auto" (UTF-8 is tried first, so the same files read the same, and a cp1252 file of
    new rows still reads).
    """
    if not reader:
        return params.delimiter, params.header, params.encoding
    encoding = reader.get("encoding") or params.encoding
    if getattr(params, "encoding", "auto") == "auto" and encoding in ("utf-8", "utf-8-sig"):
        encoding = "auto"
    header = reader.get("header", params.header)
    return reader.get("delimiter") or params.delimiter, header, encoding


def _numeric_rows(table: Table) -> np.ndarray:
    """A table's cells as float32 rows (empty cells NaN), or a DataError naming the cell."""
    out = np.empty((len(table.rows), len(table.names)), dtype=np.float32)
    for i, row in enumerate(table.rows):
        for j, cell in enumerate(row):
            try:
                out[i, j] = float(cell) if cell else np.nan
            except ValueError:
                raise DataError(
                    f"'{table.source}' row {i + 1}, column {j + 1}: non-numeric value "
                    f"{cell[:40]!r}; give numbers, or a header row naming the columns"
                ) from None
    return out


def _read_text_input(path: Path, suffix: str) -> np.ndarray | Table:
    """A .csv/.tsv with a header → Table, without → numbers; a .txt: numbers, or else one
    sentence a line. Delimiter, header and encoding are detected (`read_table`)."""
    if suffix == ".txt":
        try:
            return _numeric_rows(read_table(path))
        except DataError:
            text, _ = read_text(path)
            lines = [ln.strip() for ln in text.replace("\r", "\n").split("\n") if ln.strip()]
            out = np.empty(len(lines), dtype=object)
            out[:] = lines
            return out
    table = read_table(path, "\t" if suffix == ".tsv" else "auto")
    return table if table.format["header"] else _numeric_rows(table)
