"""Reading delimited text tables (CSV/TSV/whitespace, any extension) into typed columns.

`read_table` decides the delimiter, header and encoding (or takes them), checks every
row's field count, and lets pandas' C parser split the file; cells stay strings.

Users' tables arrive as text: the delimiter, which columns are numbers and which are
categories, and how a missing value is spelled all vary. This module decides each of
them once, with a clear error naming the column when a value contradicts the decision,
so that preprocessing downstream only ever sees floats (NaN for missing) and strings
(None for missing).
"""

from __future__ import annotations

import csv
import gc
import io
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.errors import DataError
from trainlab.names import did_you_mean

DEFAULT_MISSING = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
#: a numeric target with more distinct values than this (or any fraction) is regression
MAX_CLASS_VALUES = 10
CANDIDATE_DELIMITERS = ",\t;|"
WHITESPACE = "whitespace"
#: Lines the delimiter and header are decided on.
SAMPLE_LINES = 50
#: A whitespace-separated token: a quoted string (with "" escapes) and what follows it, or
#: a run of non-space characters; the way pandas' tokenizer splits on whitespace.
_WS_TOKEN = re.compile(r'"(?:[^"]|"")*"?[^ \t]*|[^ \t]+')
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


@dataclass
class Table:
    """Named columns of raw cell strings, as read from a file.

    `format` holds the reader settings that were used, detected ones resolved:
    {"delimiter": "," | "\\t" | ";" | "|" | "whitespace" | any character,
    "header": bool, "encoding": codec name}; read a file the same way with
    `read_table(path, **format)`. Empty for tables not read from a file.
    """

    names: list[str]
    rows: list[list[str]]
    source: str = ""
    format: dict[str, Any] = field(default_factory=dict)

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


def read_text(path: str | Path, encoding: str = "auto") -> tuple[str, str]:
    """The text of `path` and the codec that decoded it, or a DataError naming the problem.

    With "auto": UTF-8 (a BOM is dropped), then cp1252, then latin-1 (which decodes any
    bytes); a UTF-16 BOM selects utf-16. NUL bytes or many control characters mean a
    binary file, refused. Line endings are left as they are.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise DataError(f"data file '{path}' {what}; check data.dataset.path")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read '{path}': {exc.strerror or exc}") from None
    if not raw.strip():
        raise DataError(f"data file '{path}' is empty")
    if encoding == "auto":
        text, used = _decode_auto(raw)
    else:
        try:
            text, used = raw.decode(encoding), encoding
        except LookupError:
            raise DataError(
                f"unknown text encoding {encoding!r}; use auto, utf-8, cp1252 or latin-1"
            ) from None
        except UnicodeError as exc:
            start = getattr(exc, "start", "?")
            raise DataError(
                f"'{path}' is not valid {encoding} (byte {start}); set data.dataset.encoding "
                "to auto, or to the file's (e.g. cp1252 or latin-1)"
            ) from None
    text = text.removeprefix("\ufeff")
    head = text[:65536]
    if "\x00" in text or len(_CONTROL.findall(head)) > max(2, len(head) // 100):
        raise DataError(
            f"'{path}' holds NUL or control bytes: it is a binary file, not a delimited text "
            "table (UTF-16 text: set data.dataset.encoding: utf-16)"
        )
    return text, used


def _decode_auto(raw: bytes) -> tuple[str, str]:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeError:
            pass
    for codec in ("utf-8", "cp1252"):
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec == "utf-8" and text.startswith("\ufeff"):
            codec = "utf-8-sig"
        return text, codec
    return raw.decode("latin-1"), "latin-1"


def resolve_delimiter(delimiter: str) -> str:
    """The reader's name for a delimiter setting: "auto", "whitespace" or one character.

    A single space means whitespace (runs of spaces and TABs); a TAB stays a TAB.
    """
    if delimiter in ("auto", WHITESPACE):
        return delimiter
    if delimiter == " ":
        return WHITESPACE
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise DataError(
            f"delimiter {delimiter!r} is not usable; set data.dataset.delimiter to auto, "
            "whitespace or one character such as ',' ';' '|' or a TAB"
        )
    return delimiter


def split_rows(text: str, delimiter: str) -> list[list[str]]:
    """`text` (one or more lines) split into rows of raw fields, quotes honoured."""
    if delimiter == WHITESPACE:
        return [_WS_TOKEN.findall(line) for line in text.split("\n")]
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        return list(csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True))
    except csv.Error:
        return []
    finally:
        csv.field_size_limit(limit)


def _widths(row: list[str]) -> tuple[int, ...]:
    """The field counts `row` may stand for: a trailing empty field may be a trailing separator."""
    n = len(row)
    return (n, n - 1) if n > 1 and not row[-1].strip() else (n,)


def _score(rows: list[list[str]]) -> tuple[float, int]:
    """(share of rows, width): the width > 1 the most non-blank rows agree on."""
    rows = [r for r in rows if any(c.strip() for c in r)] or rows
    votes: dict[int, int] = {}
    for row in rows:
        for w in _widths(row):
            votes[w] = votes.get(w, 0) + 1
    best = max(((n, w) for w, n in votes.items() if w > 1), default=(0, 0))
    return (best[0] / len(rows) if rows else 0.0), best[1]


def detect_delimiter(sample: str | Sequence[str]) -> str:
    """The delimiter of a sample of lines: ',', TAB, ';', '|' or "whitespace".

    Each candidate splits the lines (quotes honoured); one is consistent when every line
    gets the same number of fields (> 1; a trailing separator does not count). Of the
    consistent single characters the one giving most fields wins (ties: , TAB ; |).
    Whitespace beats only a TAB, and only when it gives more fields (auto-mpg: columns
    aligned with spaces, a TAB before the quoted name). With none consistent, the one
    most lines agree on (at least half) wins, so that a ragged row is reported rather
    than guessed around; else the file is one column.
    """
    lines = sample.split("\n") if isinstance(sample, str) else list(sample)
    lines = [ln for ln in lines if ln.strip()][:SAMPLE_LINES]
    text = "\n".join(lines)
    order = [*CANDIDATE_DELIMITERS, WHITESPACE]
    scores = {d: _score(split_rows(text, d)) for d in order}
    consistent = [d for d in order if scores[d][0] == 1.0]
    singles = [d for d in consistent if d != WHITESPACE]
    if singles:
        best = max(singles, key=lambda d: (scores[d][1], -order.index(d)))
        ws = scores[WHITESPACE]
        if WHITESPACE in consistent and best == "\t" and ws[1] > scores[best][1]:
            return WHITESPACE
        return best
    if consistent:
        return WHITESPACE
    likely = [d for d in order if scores[d][0] >= 0.5]
    if likely:
        return max(likely, key=lambda d: (scores[d], -order.index(d)))
    return next((d for d in CANDIDATE_DELIMITERS if d not in text), ",")


def _numeric(cells: np.ndarray) -> np.ndarray:
    """Which cells parse as numbers (vectorized; pandas' number syntax)."""
    import pandas as pd

    if cells.size == 0:
        return np.zeros(cells.shape, dtype=bool)
    flat = pd.to_numeric(pd.Series(cells.reshape(-1), dtype=object), errors="coerce")
    return flat.notna().to_numpy().reshape(cells.shape)


def looks_like_header(
    rows: Sequence[Sequence[str]], missing: Sequence[str] = DEFAULT_MISSING
) -> bool:
    """Whether the first of `rows` (stripped cells, the first ~50 rows) names the columns.

    The rule: a column is numeric when at least 90 % of its non-missing cells below the
    first row are numbers. With numeric columns, the first row is a header when more than
    half of them have a first-row cell that is text (neither a number nor a missing
    marker): adult-like files yes; housing.data (all numbers) and abalone.data (`M,0.455,
    …`: text only where the body is text) no. Without numeric columns, it is a header when
    none of its cells is empty and none recurs below it in its column. A single row is a
    header unless all its cells are numbers.
    """
    if not rows:
        return False
    width = len(rows[0])
    first = np.asarray(list(rows[0]), dtype=object)
    first_missing = np.isin(first, list(missing))
    first_number = _numeric(first)
    if len(rows) == 1:
        return bool((~first_number & ~first_missing).any())
    depth = max(5, min(SAMPLE_LINES, 200_000 // max(width, 1)))  # wide files: fewer rows
    body = np.asarray([_fit(list(r), width) for r in rows[1 : depth + 1]], dtype=object)
    present = ~np.isin(body, list(missing))
    counts = present.sum(axis=0)
    numbers = (_numeric(body) & present).sum(axis=0)
    numeric_cols = (counts > 0) & (numbers >= 0.9 * counts)
    if numeric_cols.any():
        named = numeric_cols & ~first_number & ~first_missing
        return 2 * int(named.sum()) > int(numeric_cols.sum())
    if first_missing.any():
        return False
    return all(first[j] not in set(body[:, j]) for j in range(width))


def _fit(row: list[str], width: int) -> list[str]:
    return row[:width] if len(row) >= width else row + [""] * (width - len(row))


def _content_lines(text: str, skip_prefix: str | None) -> tuple[list[str], list[int]]:
    """Non-blank lines that are not comments, and their 1-based line numbers in the file."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines, numbers = [], []
    for i, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped or (skip_prefix and stripped.startswith(skip_prefix)):
            continue
        lines.append(line)
        numbers.append(i)
    return lines, numbers


def _records(lines: list[str], body: str, delimiter: str) -> list[tuple[int, bool, bool, int]]:
    """Per record of `body`: (fields, last field empty, all fields empty, index of its line).

    Counted the way pandas splits (quotes honoured) so that records and parsed rows pair
    up; quote-free files take a fast path that counts separators.
    """
    if delimiter == WHITESPACE or '"' not in body:
        out = []
        for i, line in enumerate(lines):
            if delimiter == WHITESPACE:
                n = len(_WS_TOKEN.findall(line))
                out.append((n, False, n == 0, i))
            else:
                n = line.count(delimiter) + 1
                tail = line[line.rfind(delimiter) + 1 :]
                out.append((n, not tail.strip(), not line.replace(delimiter, "").strip(), i))
        return out
    out, previous = [], 0
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(body) + 1))
    try:
        reader = csv.reader(io.StringIO(body), delimiter=delimiter, skipinitialspace=True)
        for row in reader:
            blank = not any(c.strip() for c in row)
            out.append((len(row), bool(row) and not row[-1].strip(), blank, previous))
            previous = reader.line_num
    except csv.Error:
        return []  # pandas reports the problem
    finally:
        csv.field_size_limit(limit)
    return out


def _row_width(records: list[tuple[int, bool, bool, int]]) -> int:
    """Fields per row: the first row's count, or one less when it ends in a separator and
    most of the first rows agree (a trailing separator, not an empty last column)."""
    first = records[0]
    options = (first[0], first[0] - 1) if first[1] and first[0] > 1 else (first[0],)
    votes = dict.fromkeys(options, 0)
    for n, last_empty, _, _ in records[: SAMPLE_LINES + 1]:
        for w in (n, n - 1) if last_empty else (n,):
            if w in votes:
                votes[w] += 1
    return max(options, key=lambda w: (votes[w], -w))


def _check_widths(
    records: list[tuple[int, bool, bool, int]],
    width: int,
    header: bool,
    where: tuple[str, str, list[str], list[int]],
) -> None:
    """DataError for the first row whose field count differs from the first row's."""
    path, label, lines, numbers = where
    k = 0
    for n, last_empty, blank, line in records:
        if blank:
            continue
        if n != width and not (n == width + 1 and last_empty):
            row = k if header else k + 1
            first = "the header has" if header else "the first row has"
            quotes = (
                ', or the quotes there (a " opens a field that runs to the next closing ")'
                if '"' in lines[line]
                else " or quote the fields that contain it"
            )
            raise DataError(
                f"'{path}' data row {row} (line {numbers[line]}) has {n} fields, {first} "
                f"{width}; check the delimiter (data.dataset.delimiter; read as {label})"
                f"{quotes}"
            )
        k += 1


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection while millions of cell strings are made: none of them is
    garbage, and the collector's passes over them would take most of the reading time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(body: str, delimiter: str, columns: int, width: int, path: Path) -> list[list[str]]:
    """pandas' C parser over `body` split into `columns` fields: every row's first `width`
    cells, stripped."""
    import pandas as pd

    sep = r"\s+" if delimiter == WHITESPACE else delimiter
    try:
        frame = pd.read_csv(
            io.StringIO(body),
            sep=sep,
            header=None,
            names=list(range(columns)),
            index_col=False,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skipinitialspace=True,
            skip_blank_lines=True,
            quotechar='"',
            doublequote=True,
            engine="c",
        )
        cells = frame.to_numpy(dtype=object)[:, :width].tolist()
    except Exception as exc:  # noqa: BLE001 — any parser failure is the file's problem
        reason = " ".join(str(exc).replace("Error tokenizing data. C error:", "").split())
        raise DataError(
            f"'{path}' cannot be parsed ({reason[:200]}); check data.dataset.delimiter and "
            'the quoting (a " opens a quoted field that must be closed)'
        ) from None
    return [[c.strip() if isinstance(c, str) else "" for c in row] for row in cells]


def _delimiter_label(delimiter: str) -> str:
    return {"\t": "TAB", WHITESPACE: "whitespace"}.get(delimiter, repr(delimiter))


def read_table(
    path: str | Path,
    delimiter: str = "auto",
    header: bool | str = "auto",
    encoding: str = "auto",
    skip_prefix: str | None = None,
) -> Table:
    """Read a delimited text file with pandas; every cell a stripped string.

    Args:
        delimiter: "auto" (a `.tsv` is TAB-separated, other files are detected by
            `detect_delimiter`), "whitespace" (runs of spaces and TABs; so is " "), or
            one character (TAB is only TAB). Quoted fields ("a, b") are one cell.
        header: True, False (columns named c0, c1, …) or "auto" (`looks_like_header`).
        encoding: a codec, or "auto" (UTF-8, then cp1252, then latin-1; see `read_text`).
        skip_prefix: lines starting with it are comments (Adult's test file has one).

    Blank lines and rows of empty cells are skipped; a separator ending a line adds no
    column. The resolved settings are in the table's `format`. Any extension reads the
    same. Every problem is a one-line DataError (missing, empty, binary, ragged rows,
    a header without rows, duplicate names).
    """
    path = Path(path)
    sep = resolve_delimiter(delimiter)
    if header not in (True, False, "auto"):
        raise DataError(f"header must be auto, true or false (got {header!r})")
    text, used = read_text(path, encoding)
    lines, numbers = _content_lines(text, skip_prefix)
    if not lines:
        comments = f" besides comment lines ({skip_prefix}…)" if skip_prefix else ""
        raise DataError(f"data file '{path}' is empty{comments}")
    if sep == "auto":
        sep = "\t" if path.suffix.lower() == ".tsv" else detect_delimiter(lines)
    body = "\n".join(lines)
    records = _records(lines, body, sep)
    filled = [r for r in records if not r[2]]
    if records and not filled:
        raise DataError(f"data file '{path}' holds separators but no values")
    width = _row_width(filled) if filled else 1
    sample = [_fit(r, width) for r in _sample_rows(lines, sep) if any(r)]
    has_header = looks_like_header(sample) if header == "auto" else bool(header)
    _check_widths(records, width, has_header, (str(path), _delimiter_label(sep), lines, numbers))
    extra = any(n == width + 1 for n, *_ in records)
    with _gc_paused():
        rows = _parse(body, sep, width + extra, width, path)
        if records and len(rows) != len(records):
            raise DataError(
                f"'{path}': a quoted field runs past the end of its line ({len(records)} "
                f"lines but {len(rows)} rows); check the quoting, or set data.dataset.delimiter"
            )
        rows = [r for r in rows if any(r)]
    if width > 1 and all(not r[-1] for r in rows):
        rows = [r[:-1] for r in rows]  # an unnamed, empty last column: trailing separators
    return _named(rows, has_header, header == "auto", path, {"delimiter": sep, "encoding": used})


def _sample_rows(lines: list[str], delimiter: str) -> list[list[str]]:
    """The first rows split like the parser does, stripped, for detecting the header."""
    rows = split_rows("\n".join(lines[: SAMPLE_LINES + 1]), delimiter)
    return [[c.strip() for c in r] for r in rows]


def _named(
    rows: list[list[str]], header: bool, detected: bool, path: Path, fmt: dict[str, Any]
) -> Table:
    """The Table of `rows`, names from the first row or c0, c1, …; errors for no rows."""
    fmt = {"delimiter": fmt["delimiter"], "header": header, "encoding": fmt["encoding"]}
    if not rows:
        raise DataError(f"data file '{path}' holds no values; check data.dataset.delimiter")
    if not header:
        return Table([f"c{i}" for i in range(len(rows[0]))], rows, str(path), fmt)
    names, rows = rows[0], rows[1:]
    if not rows:
        hint = " (if that row is data, set data.dataset.header: false)" if detected else ""
        raise DataError(f"data file '{path}' has a header but no data rows{hint}")
    dupes = {n for n, count in Counter(names).items() if count > 1}
    if dupes:
        raise DataError(f"'{path}': duplicate column names {sorted(dupes)}; rename them")
    return Table(names, rows, str(path), fmt)


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

    With task "auto", a target whose values are all numbers with more than 10 distinct
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
            many = len(set(values)) > MAX_CLASS_VALUES
            task = "regression" if fractional or many else "classification"
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
    from trainlab.data.roles import cells_by_column

    cells = cells_by_column(x, names)
    lacking = [n for n in names if n not in cells]
    if lacking:
        raise DataError(
            f"{getattr(x, 'source', '') or 'input'}: lacks training column '{lacking[0]}'; "
            f"the run needs columns {', '.join(names)}"
        )
    records = [list(row) for row in zip(*(cells[n] for n in names), strict=True)]
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
