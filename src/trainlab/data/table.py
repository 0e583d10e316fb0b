"""Reading delimited text tables (CSV/TSV) into typed columns.

Users' tables arrive as text: the delimiter, which columns are numbers and which are
categories, and how a missing value is spelled all vary. This module decides each of
them once, with a clear error naming the column when a value contradicts the decision,
so that preprocessing downstream only ever sees floats (NaN for missing) and strings
(None for missing).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainlab.errors import DataError
from trainlab.names import did_you_mean

DEFAULT_MISSING = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
CANDIDATE_DELIMITERS = ",\t;|"


@dataclass
class Table:
    """Named columns of raw cell strings, as read from a file."""

    names: list[str]
    rows: list[list[str]]
    source: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        """All cells of column `name`; DataError naming the available columns if absent."""
        try:
            i = self.names.index(name)
        except ValueError:
            raise DataError(
                f"{self.source or 'table'}: no column '{name}'; columns are "
                f"{', '.join(self.names)}; {did_you_mean(name, self.names)}".rstrip("; ")
            ) from None
        return [r[i] for r in self.rows]


def detect_delimiter(sample: str) -> str:
    """The most plausible delimiter of `sample` among , TAB ; and |."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=CANDIDATE_DELIMITERS).delimiter
    except csv.Error:
        lines = [ln for ln in sample.splitlines() if ln.strip()][:20]
        counts = {d: min((ln.count(d) for ln in lines), default=0) for d in CANDIDATE_DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] > 0 else ","


def read_table(
    path: str | Path,
    delimiter: str = "auto",
    header: bool = True,
    encoding: str = "utf-8",
    skip_prefix: str | None = None,
) -> Table:
    """Read a delimited file; cells are stripped, blank lines skipped.

    Args:
        delimiter: one character, or "auto" to detect it from the first lines.
        header: the first row names the columns; without it they are named c0, c1, …
        skip_prefix: lines starting with it are comments (Adult's test file has one).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' not found; check data.dataset.path")
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"'{path}' is not valid {encoding} (byte {exc.start}); set data.dataset.encoding "
            "(e.g. cp1252 or latin-1)"
        ) from None
    if not text.strip():
        raise DataError(f"data file '{path}' is empty")
    if delimiter == "auto":
        delimiter = "\t" if path.suffix.lower() == ".tsv" else detect_delimiter(text[:8192])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    rows = []
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        if skip_prefix and row[0].startswith(skip_prefix):
            continue
        rows.append([c.strip() for c in row])
    if header:
        names, rows = rows[0], rows[1:]
    else:
        names = [f"c{i}" for i in range(len(rows[0]))]
    if not rows:
        raise DataError(f"data file '{path}' has a header but no data rows")
    width = len(names)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(
                f"'{path}' data row {i + 1} has {len(row)} fields, the header has {width}; "
                "check the delimiter (data.dataset.delimiter) or quoting"
            )
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise DataError(f"'{path}': duplicate column names {sorted(dupes)}; rename them")
    return Table(names, rows, str(path))


def _parse_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def type_columns(
    table: Table,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    missing: Sequence[str] = DEFAULT_MISSING,
) -> tuple[np.ndarray, list[str]]:
    """Decide numeric vs categorical for each of `columns` and convert the cells.

    A column is numeric when every non-missing cell parses as a number, categorical when
    most do not. A column that is mostly numbers with some text is refused: that is
    nearly always a missing-value marker or a typo, and silently turning the column into
    categories would hide it.

    Returns an (N, F) array — float32 when every column is numeric (NaN = missing), else
    object with floats and strings (None = missing) — and each column's kind.
    """
    missing_set = set(missing)
    unknown = [c for c in (*categorical, *numeric) if c not in table.names]
    if unknown:
        raise DataError(
            f"{table.source}: data.dataset.categorical/numeric name column '{unknown[0]}', "
            f"which the file lacks; {did_you_mean(unknown[0], table.names)}"
            f"columns are {', '.join(table.names)}"
        )
    cells_by_col, kinds = [], []
    for name in columns:
        cells = table.column(name)
        present = [c for c in cells if c not in missing_set]
        if name in categorical:
            kinds.append("categorical")
            cells_by_col.append([None if c in missing_set else c for c in cells])
            continue
        parsed = [_parse_float(c) for c in cells]
        bad = [
            (i, c)
            for i, (c, v) in enumerate(zip(cells, parsed, strict=True))
            if v is None and c not in missing_set
        ]
        if not bad and (present or name in numeric):
            kinds.append("numeric")
            cells_by_col.append([np.nan if v is None else v for v in parsed])
            continue
        if name in numeric or (present and len(bad) < 0.5 * len(present)):
            row, value = bad[0] if bad else (0, "")
            raise DataError(
                f"{table.source}: column '{name}' is numeric but row {row + 1} holds text "
                f"{value!r}; list it in data.dataset.categorical, or add {value!r} to "
                "data.dataset.missing if it marks a missing value"
            )
        kinds.append("categorical")
        cells_by_col.append([None if c in missing_set else c for c in cells])
    if all(k == "numeric" for k in kinds):
        X = np.asarray(cells_by_col, dtype=np.float32).T.copy()
    else:
        X = np.empty((len(table), len(columns)), dtype=object)
        for j, col in enumerate(cells_by_col):
            X[:, j] = col
    return X, kinds


def encode_target(
    cells: Sequence[str],
    name: str,
    source: str,
    task: str = "auto",
    classes: Sequence[str] | None = None,
    missing: Sequence[str] = DEFAULT_MISSING,
) -> tuple[np.ndarray, str, list[str] | None]:
    """Turn target cells into class indices or regression values.

    With task "auto", a target whose values are all numbers with more than 20 distinct
    values (or any fractional value) is regression; anything else is classification
    with classes sorted by name (numbers by value). Returns (y, task, classes).
    """
    bad = [i for i, c in enumerate(cells) if c in set(missing)]
    if bad:
        raise DataError(
            f"{source}: target column '{name}' is missing in {len(bad)} rows "
            f"(first: row {bad[0] + 1}); drop those rows or fill them"
        )
    values = [_parse_float(c) for c in cells]
    numeric = all(v is not None for v in values)
    if task == "auto":
        if numeric:
            arr = np.asarray(values)
            fractional = bool((arr != np.round(arr)).any())
            task = "regression" if fractional or len(set(values)) > 20 else "classification"
        else:
            task = "classification"
    if task == "regression":
        if not numeric:
            i = values.index(None)
            raise DataError(
                f"{source}: target '{name}' has text {cells[i]!r} at row {i + 1} but the task "
                "is regression; set data.dataset.task: classification"
            )
        return np.asarray(values, dtype=np.float32), task, None
    if classes is None:
        uniq = set(cells)
        if numeric:
            classes = sorted(uniq, key=float)
        else:
            classes = sorted(uniq)
    index = {c: i for i, c in enumerate(classes)}
    try:
        y = np.fromiter((index[c] for c in cells), dtype=np.int64, count=len(cells))
    except KeyError as exc:
        raise DataError(
            f"{source}: target '{name}' has class {exc.args[0]!r} not among {list(classes)}"
        ) from None
    return y, "classification", list(classes)


def raw_rows(
    x: object, names: Sequence[str], kinds: Sequence[str], missing: Sequence[str] = DEFAULT_MISSING
) -> np.ndarray:
    """Prediction inputs with column names → the raw (N, F) array preprocessing expects.

    `x` may be a `Table`, a list of dicts, a dict of columns, anything with
    `.to_dict("records")` (a DataFrame), or an (N, F) array already in training order.
    Columns are matched by name; extra columns are ignored, a missing one is an error.
    """
    if hasattr(x, "to_dict") and not isinstance(x, dict):
        x = x.to_dict("records")
    if isinstance(x, dict):
        if x and all(isinstance(v, (list, tuple, np.ndarray)) for v in x.values()):
            keys = list(x)
            x = [dict(zip(keys, vals, strict=True)) for vals in zip(*x.values(), strict=True)]
        else:
            x = [x]
    if isinstance(x, Table):
        lacking = [n for n in names if n not in x.names]
        if lacking:
            raise DataError(
                f"{x.source or 'input'}: lacks training column '{lacking[0]}'; the run needs "
                f"columns {', '.join(names)}"
            )
        idx = [x.names.index(n) for n in names]
        records = [[r[i] for i in idx] for r in x.rows]
    elif isinstance(x, list) and x and isinstance(x[0], dict):
        lacking = [n for n in names if n not in x[0]]
        if lacking:
            raise DataError(
                f"input lacks training column '{lacking[0]}'; the run needs columns "
                f"{', '.join(names)}"
            )
        records = [["" if r.get(n) is None else str(r.get(n)) for n in names] for r in x]
    else:
        arr = np.asarray(x, dtype=object)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise DataError(
                f"input rows have {arr.shape[-1]} values; the run needs {len(names)} columns "
                f"({', '.join(names)})"
            )
        records = [["" if v is None else str(v) for v in row] for row in arr]
    table = Table(list(names), records, "input")
    missing = (*missing, "")
    out, _ = type_columns(
        table,
        list(names),
        categorical=[n for n, k in zip(names, kinds, strict=True) if k == "categorical"],
        numeric=[n for n, k in zip(names, kinds, strict=True) if k == "numeric"],
        missing=missing,
    )
    return out
