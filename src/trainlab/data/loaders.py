"""Loaders for users' own files: CSV/TSV tables, NumPy arrays, image folders, text, CIFAR-10 binary.

Each is registered in `DATASETS` under the name a recipe uses, with a params model that
validates its options:

```yaml
data:
  dataset: {name: csv, path: data/houses.csv, target: price}
```

Nothing here unpickles or executes anything from a file: `.npy`/`.npz` are read with
`allow_pickle=False`, CIFAR-10 is read from its *binary* version, never the pickled one.
"""

from __future__ import annotations

import codecs
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field

from trainlab.data.arrays import ArrayData
from trainlab.data.registry import DATASETS
from trainlab.data.roles import ROLES, cells_by_column, infer_schema, roles_from_lists
from trainlab.data.table import DEFAULT_MISSING, encode_target, read_table
from trainlab.errors import DataError
from trainlab.names import did_you_mean
from trainlab.params import StrictModel

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def check_delimiter(value: str) -> str:
    """'auto', 'whitespace' (runs of spaces/TABs; a single space means it too) or one
    character other than a quote or a line break: what the table reader splits on.
    'tab' and a backslash-t (as a shell passes `\\t`) mean a TAB."""
    if value.lower() == "tab" or value == "\\t":
        return "\t"
    if value in ("auto", "whitespace") or (len(value) == 1 and value not in '"\r\n'):
        return value
    blank = " (a bare TAB or space on the command line arrives empty: quote it)"
    blank = "" if value else blank
    raise ValueError(
        f"delimiter must be 'auto', 'whitespace' (runs of spaces or TABs) or one character "
        f"such as ',' ';' '|' or a TAB (got {value!r}){blank}"
    )


def check_encoding(value: str) -> str:
    """A text encoding Python knows (utf-8, latin-1, cp1252 …)."""
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown text encoding {value!r}; e.g. utf-8, latin-1, cp1252") from None
    return value


def check_table_encoding(value: str) -> str:
    """'auto' (UTF-8, then cp1252, then latin-1) or a text encoding Python knows."""
    try:
        return value if value == "auto" else check_encoding(value)
    except ValueError:
        raise ValueError(
            f"unknown text encoding {value!r}; use auto, or e.g. utf-8, cp1252, latin-1"
        ) from None


def check_header(value: object) -> object:
    """'auto', true or false (YAML's yes/no and the strings 'true'/'false' too)."""
    if value == "auto" or isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "false": False, "no": False}
    if isinstance(value, str) and value.lower() in words:
        return words[value.lower()]
    raise ValueError(f"header must be auto, true or false (got {value!r})")


Delimiter = Annotated[str, AfterValidator(check_delimiter)]
TableEncoding = Annotated[str, AfterValidator(check_table_encoding)]
Header = Annotated[Literal["auto"] | bool, BeforeValidator(check_header)]
ColumnRoleName = Literal[ROLES]  # type: ignore[valid-type]
Encoding = Annotated[str, AfterValidator(check_encoding)]
PathText = Annotated[str, Field(min_length=1)]


def _existing(path: str, key: str = "path") -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(
            f"data.dataset.{key}: '{p}' not found (relative paths start at {Path.cwd()})"
        )
    return p


# ------------------------------------------------------------------------ tables
class CsvParams(StrictModel):
    """Options of the `csv` dataset: a delimited text table (any extension), read by pandas.

    Reader options (what was used, detected values resolved, is kept with the run and
    applies again to prediction files):

    - `delimiter`: "auto" (default: a `.tsv` is TAB-separated; otherwise `,` TAB `;` `|`
      and whitespace are tried on the first 50 lines and the one giving every line the
      same number of fields, most fields first, wins), "whitespace" (runs of spaces and
      TABs, as in UCI's housing.data and auto-mpg.data; a single space " " means this
      too) or one character (a TAB is only a TAB). Quoted fields ("a, b") are one cell;
      a separator at the end of a line adds no column.
    - `header`: "auto" (default: the first row names the columns when most numeric
      columns have text there, or, in a file without numbers, when none of its cells
      recurs below it), true or false. Without a header the columns are named c0, c1, …
      (use those names in `target`, `drop`, `categorical` …).
    - `encoding`: "auto" (default: UTF-8 with or without BOM, then cp1252, then latin-1)
      or a codec name such as utf-8, cp1252, latin-1.
    """

    path: PathText
    target: str
    test_path: PathText | None = None
    delimiter: Delimiter = "auto"
    header: Header = "auto"
    encoding: TableEncoding = "auto"
    categorical: list[str] = []
    numeric: list[str] = []
    drop: list[str] = []
    roles: dict[str, ColumnRoleName] = {}
    missing: list[str] = list(DEFAULT_MISSING)
    task: Literal["auto", "classification", "regression"] = "auto"


def table_dataset(
    tables: Sequence,
    target: str,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    drop: Sequence[str] = (),
    missing: Sequence[str] = DEFAULT_MISSING,
    task: str = "auto",
    source: str = "",
    roles: Mapping[str, str] | None = None,
) -> ArrayData:
    """Features and encoded target of one table (or a train table and a test table).

    Column roles (roles.py) are inferred on the first table, with `roles` and the
    `categorical` / `numeric` / `drop` lists as overrides, and applied to both; the
    schema is kept in `extras["table"]` for data.json and prediction.
    """
    first = tables[0]
    _check_columns(first, target, drop)
    features = [n for n in first.names if n != target]
    wanted = roles_from_lists(roles or {}, categorical, numeric, drop)
    schema = infer_schema(first, features, wanted, missing)
    if not schema.input_columns:
        raise DataError(
            f"{first.source}: no usable feature columns besides the target '{target}' "
            f"({schema.summary()}); set data.dataset.roles"
        )
    X = schema.encode(cells_by_column(first, features), first.source)
    y, task, classes = encode_target(first.column(target), target, first.source, task)
    X_test = y_test = None
    if len(tables) > 1:
        test = tables[1]
        lacking = [c for c in (*schema.input_columns, target) if c not in test.names]
        if lacking:
            raise DataError(f"{test.source}: lacks column '{lacking[0]}' of the training file")
        X_test = schema.encode(cells_by_column(test, features), test.source)
        both = [*first.column(target), *test.column(target)]
        y_all, task, classes = encode_target(both, target, first.source, task)
        y, y_test = y_all[: len(first)], y_all[len(first) :]
    table_facts = {"schema": schema.to_dict(), "reader": dict(getattr(first, "format", {}))}
    return ArrayData(
        X,
        y,
        task,
        classes,
        schema.feature_names,
        X_test=X_test,
        y_test=y_test,
        source=source or first.source,
        extras={"column_kinds": schema.feature_kinds, "table": table_facts},
    )


def _check_columns(first: Any, target: str, drop: Sequence[str]) -> None:
    """The target and dropped columns exist (did-you-mean otherwise)."""
    if target not in first.names:
        raise DataError(
            f"{first.source}: target column '{target}' not found; columns are "
            f"{', '.join(first.names)}; {did_you_mean(target, first.names)}"
            "set data.dataset.target"
        )
    unknown = [n for n in drop if n not in first.names]
    if unknown:
        raise DataError(
            f"{first.source}: data.dataset.drop names column '{unknown[0]}', which the file "
            f"lacks; {did_you_mean(unknown[0], first.names)}columns are {', '.join(first.names)}"
        )
    if target in drop:
        raise DataError(f"{first.source}: data.dataset.drop names the target '{target}'")


@DATASETS.register(
    "csv",
    description="Your CSV/TSV file: name the path and the target column",
    params=CsvParams,
    task="auto",
    source="local file",
    preset="tabular",
)
def load_csv(params: CsvParams) -> ArrayData:
    """A user's table; numeric/categorical columns detected, overridable."""
    tables = _read_csv_tables(params)
    return table_dataset(
        tables,
        params.target,
        params.categorical,
        params.numeric,
        params.drop,
        params.missing,
        params.task,
        source=f"csv:{params.path}",
        roles=params.roles,
    )


def _read_csv_tables(params: CsvParams) -> list:
    """The training table and the test table (read with the training file's delimiter
    and header); a target missing from columns c0, c1, … says the header was not found."""
    first = read_table(_existing(params.path), params.delimiter, params.header, params.encoding)
    tables = [first]
    if params.test_path:
        fmt = first.format
        tables.append(
            read_table(
                _existing(params.test_path, "test_path"),
                fmt["delimiter"],
                fmt["header"],
                params.encoding,
            )
        )
    if params.header == "auto" and not first.format["header"] and params.target not in first.names:
        raise DataError(
            f"{first.source}: target column '{params.target}' not found: the first row looks "
            f"like data, so the columns are named {', '.join(first.names[:3])}, …; set "
            "data.dataset.header: true if it names the columns, or name the target c<N>"
        )
    return tables


# ------------------------------------------------------------------------ arrays
class NumpyParams(StrictModel):
    """Options of the `npy` dataset: features and targets as NumPy files."""

    path: PathText
    targets: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"


def _targets(y: np.ndarray, task: str, source: str) -> tuple[np.ndarray, str, list[str] | None]:
    y = np.asarray(y)
    if task == "auto":
        task = "classification" if y.dtype.kind in "iub" or y.dtype.kind in "US" else "regression"
    if task == "regression":
        return y.astype(np.float32), task, None
    values, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), task, [str(v) for v in values]


@DATASETS.register(
    "npy",
    description="Your NumPy arrays: a .npz with 'x' and 'y', or .npy features plus .npy targets",
    params=NumpyParams,
    task="auto",
    source="local file",
)
def load_numpy(params: NumpyParams) -> ArrayData:
    """Features and targets from .npy/.npz files (never unpickled)."""
    path = _existing(params.path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.keys())
                xk = next((k for k in ("x", "X", "features") if k in keys), None)
                yk = next((k for k in ("y", "Y", "targets", "labels") if k in keys), None)
                if xk is None or yk is None:
                    raise DataError(
                        f"'{path}' holds arrays {sorted(keys)}; name them 'x' (features) and "
                        "'y' (targets)"
                    )
                X, y = z[xk], z[yk]
        else:
            if params.targets is None:
                raise DataError(
                    f"data.dataset.targets: '{path}' holds only features; name the targets .npy"
                )
            X = np.load(path, allow_pickle=False)
            y = np.load(_existing(params.targets, "targets"), allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"cannot read '{path}' (object arrays are refused): {exc}") from None
    if len(X) != len(y):
        raise DataError(f"'{path}': {len(X)} feature rows but {len(y)} targets")
    if len(X) == 0:
        raise DataError(f"'{path}' holds no samples")
    y, task, classes = _targets(y, params.task, str(path))
    return ArrayData(np.asarray(X, dtype=np.float32), y, task, classes, source=f"npy:{path}")


# ------------------------------------------------------------------------ images
class ImageFolderParams(StrictModel):
    """Options of the `image_folder` dataset: one sub-folder of images per class."""

    path: PathText
    size: tuple[int, int] | None = None
    grayscale: bool = False
    corrupt: Literal["fail", "skip"] = "fail"


def read_image(path: Path, size: tuple[int, int] | None, grayscale: bool) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1]; DataError if Pillow cannot decode it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if grayscale else "RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image '{path}' cannot be decoded ({exc})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


@DATASETS.register(
    "image_folder",
    description="Your images: path/<class>/<image>.png|jpg, one sub-folder per class",
    params=ImageFolderParams,
    task="classification",
    source="local folder",
)
def load_image_folder(params: ImageFolderParams) -> ArrayData:
    """Every decodable image under `path/<class>/`; corrupt files fail (or skip, if asked)."""
    root = _existing(params.path)
    if not root.is_dir():
        raise DataError(f"data.dataset.path: '{root}' is not a folder of class sub-folders")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"'{root}' has no class sub-folders (expected {root}/<class>/<image>)")
    images, labels, skipped = [], [], []
    for ci, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                images.append(read_image(f, params.size, params.grayscale))
            except DataError:
                if params.corrupt == "fail":
                    raise DataError(
                        f"image '{f}' is corrupt or not an image; remove it or set "
                        "data.dataset.corrupt: skip"
                    ) from None
                skipped.append(str(f))
                continue
            labels.append(ci)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} undecodable images: {', '.join(skipped[:5])}", stacklevel=2
        )
    if not images:
        raise DataError(f"'{root}' holds no readable images ({', '.join(IMAGE_SUFFIXES)})")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(
            f"images under '{root}' have different sizes {sorted(shapes)[:3]}; set "
            "data.dataset.size: [H, W]"
        )
    return ArrayData(
        np.stack(images),
        np.asarray(labels, dtype=np.int64),
        "classification",
        classes,
        source=f"image_folder:{root}",
        extras={"skipped": skipped},
    )


class Cifar10BinaryParams(StrictModel):
    """Options of `cifar10_binary`: the official binary batch files (`data_batch_N.bin`)."""

    paths: list[str] = Field(min_length=1)
    test_paths: list[str] = []


RECORD = 1 + 3 * 32 * 32


def read_cifar10_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) from one CIFAR-10 binary batch file."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DataError(
            f"'{path}' is not a CIFAR-10 binary batch ({raw.size} bytes is not a multiple of "
            f"{RECORD}); use the 'binary version' files, not the python pickles"
        )
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"'{path}': label {labels.max()} out of range 0-9; not a CIFAR-10 file")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


@DATASETS.register(
    "cifar10_binary",
    description="CIFAR-10 binary batch files (data_batch_*.bin, test_batch.bin): 3x32x32, "
    "10 classes",
    params=Cifar10BinaryParams,
    task="classification",
    source="local files (binary version)",
)
def load_cifar10_binary(params: Cifar10BinaryParams) -> ArrayData:
    """Pixels in [0, 1], shape (N, 3, 32, 32); the test files, if given, are the test split."""

    def read_all(paths: list[str], key: str) -> tuple[np.ndarray, np.ndarray]:
        parts = [read_cifar10_binary(_existing(p, key)) for p in paths]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    X, y = read_all(params.paths, "paths")
    data = ArrayData(
        X.astype(np.float32) / 255.0,
        y,
        "classification",
        list(CIFAR10_CLASSES),
        source="cifar10_binary",
    )
    if params.test_paths:
        Xt, yt = read_all(params.test_paths, "test_paths")
        data.X_test, data.y_test = Xt.astype(np.float32) / 255.0, yt
    return data


# ------------------------------------------------------------------------ text
class TextParams(StrictModel):
    """Options of the `text` dataset: a CSV with a text column, or one file per class."""

    path: PathText
    text_column: str = "text"
    target: str = "label"
    delimiter: Delimiter = "auto"
    encoding: Encoding = "utf-8"


def read_lines(path: Path, encoding: str) -> list[str]:
    """Lines of a text file, split on b'\\n' before decoding (cp1252 holds 0x85 = NEL)."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"text file '{path}' is empty")
    try:
        return [ln.decode(encoding).rstrip("\r").strip() for ln in raw.split(b"\n") if ln.strip()]
    except UnicodeDecodeError as exc:
        raise DataError(
            f"'{path}' is not valid {encoding} (byte {exc.start}); set data.dataset.encoding "
            "(e.g. cp1252)"
        ) from None


@DATASETS.register(
    "text",
    description="Your text: a CSV with text and label columns, or a folder with one file per class",
    params=TextParams,
    task="classification",
    source="local file",
)
def load_text(params: TextParams) -> ArrayData:
    """Raw strings (N,); tokenization and vocabulary happen in preprocessing (training split)."""
    path = _existing(params.path)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            raise DataError(f"'{path}' has no files (expected one text file per class)")
        texts, labels, classes = [], [], []
        for ci, f in enumerate(files):
            lines = read_lines(f, params.encoding)
            texts += lines
            labels += [ci] * len(lines)
            classes.append(f.stem)
        y = np.asarray(labels, dtype=np.int64)
    else:
        table = read_table(path, params.delimiter, True, params.encoding)
        if params.text_column not in table.names:
            raise DataError(
                f"{path}: text column '{params.text_column}' not found; columns are "
                f"{', '.join(table.names)}; {did_you_mean(params.text_column, table.names)}"
                "set data.dataset.text_column"
            )
        if params.target not in table.names:
            raise DataError(
                f"{path}: target column '{params.target}' not found; columns are "
                f"{', '.join(table.names)}; {did_you_mean(params.target, table.names)}"
                "set data.dataset.target"
            )
        texts = table.column(params.text_column)
        y, _, classes = encode_target(
            table.column(params.target), params.target, str(path), "classification"
        )
    X = np.empty(len(texts), dtype=object)
    X[:] = texts
    return ArrayData(X, y, "classification", classes, source=f"text:{path}")
