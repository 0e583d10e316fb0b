"""Column roles of a user's table: what each column is, and what the model sees of it.

A file arrives as text cells. Before preprocessing, every feature column gets one role:

- **numeric**: every present cell is a number (up to 3 distinct text markers such as
  `-`, together under 10 % of the rows, are read as missing) → one float column;
- **boolean**: two values such as yes/no, true/false, y/n, t/f → one 0/1 column;
- **datetime**: nearly every present cell is a date (2024-05-01, 5/1/2024, with or
  without a time) → year, month, day, day_of_week (hour, minute when they vary);
- **categorical**: text with few distinct values → one-hot (or index) columns;
- **identifier**: unique per row — integers that count rows or run in order, a column
  named like `id`, or one-word text → dropped;
- **text**: free text, more than 20 distinct values covering over half the rows → dropped;
- **constant**: a single value (or nothing) in every row → dropped;
- **drop**: listed in `data.dataset.drop` → dropped.

Every inference can be overridden with `data.dataset.roles: {column: role}` (or the
shorter `categorical`, `numeric`, `drop` lists). The schema is inferred on the training
file, saved with the run (data.json `table.schema`), and applied unchanged to the test
file and to prediction inputs, so a column means the same thing everywhere.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trainlab.errors import DataError
from trainlab.names import did_you_mean

ROLES = (
    "numeric",
    "boolean",
    "datetime",
    "categorical",
    "identifier",
    "text",
    "constant",
    "drop",
)
DROPPED_ROLES = ("identifier", "text", "constant", "drop")
BOOLEAN_PAIRS = (("true", "false"), ("yes", "no"), ("y", "n"), ("t", "f"))
DATE_PATTERN = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{4}/\d{1,2}/\d{1,2})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|key)$|^id[_\s-]|[a-z]Id$|ID$", re.IGNORECASE)
#: text with more distinct values than this (and covering over half the rows) is free text
TEXT_MIN_DISTINCT = 20
#: share of present cells that must be numbers for a column with a few text markers
NUMERIC_SHARE = 0.9
#: at most this many distinct text values in a numeric column are read as missing markers
MAX_TEXT_MARKERS = 3


@dataclass
class ColumnRole:
    """One column's role and the facts that decided it (saved in data.json)."""

    name: str
    role: str
    reason: str
    missing: int = 0
    distinct: int = 0
    #: text values read as missing in a numeric column (e.g. '-', 'unknown')
    markers: list[str] = field(default_factory=list)
    #: the value that means 1 in a boolean column
    true_value: str | None = None
    #: datetime parts produced (year, month, day, dayofweek, hour, minute)
    parts: list[str] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        """Whether the column reaches the model."""
        return self.role not in DROPPED_ROLES

    def outputs(self) -> list[tuple[str, str]]:
        """(feature name, kind) of what this column becomes; kind numeric or categorical."""
        if not self.kept:
            return []
        if self.role == "datetime":
            return [(f"{self.name}.{p}", "numeric") for p in self.parts]
        return [(self.name, "categorical" if self.role == "categorical" else "numeric")]


@dataclass
class TableSchema:
    """The roles of a table's feature columns, and how cells become model features."""

    columns: list[ColumnRole]
    missing: tuple[str, ...]

    @property
    def feature_names(self) -> list[str]:
        """Names of the features produced (dropped columns absent, dates expanded)."""
        return [n for c in self.columns for n, _ in c.outputs()]

    @property
    def feature_kinds(self) -> list[str]:
        """numeric or categorical per produced feature (what the preprocessor takes)."""
        return [k for c in self.columns for _, k in c.outputs()]

    @property
    def input_columns(self) -> list[str]:
        """The file columns this schema reads (the kept ones)."""
        return [c.name for c in self.columns if c.kept]

    def dropped(self) -> list[ColumnRole]:
        """Columns that do not reach the model, with their reasons."""
        return [c for c in self.columns if not c.kept]

    def encode(self, cells_by_column: Mapping[str, Sequence[str]], source: str) -> np.ndarray:
        """Cells of the kept columns → the raw (N, F) feature array preprocessing fits.

        float32 when every feature is numeric (NaN = missing), else object with floats
        and strings (None = missing).
        """
        lacking = [n for n in self.input_columns if n not in cells_by_column]
        if lacking:
            raise DataError(
                f"{source}: lacks training column '{lacking[0]}'; the run needs columns "
                f"{', '.join(self.input_columns)}"
            )
        features: list[list[Any]] = []
        for col in self.columns:
            if col.kept:
                features += _encode_column(col, cells_by_column[col.name], self.missing, source)
        n = len(features[0]) if features else 0
        if all(k == "numeric" for k in self.feature_kinds):
            return np.asarray(features, dtype=np.float32).T.reshape(n, len(features)).copy()
        X = np.empty((n, len(features)), dtype=object)
        for j, values in enumerate(features):
            X[:, j] = values
        return X

    def summary(self) -> str:
        """One line for the console: counts per role and what was dropped, and why."""
        counts = Counter(c.role for c in self.columns if c.kept)
        kept = ", ".join(f"{n} {role}" for role, n in counts.items())
        line = f"columns: {kept or 'none kept'}"
        gone = self.dropped()
        if gone:
            line += "; dropped " + "; ".join(f"'{c.name}' ({c.reason})" for c in gone)
        notes = [c for c in self.columns if c.markers]
        for c in notes:
            line += f"; '{c.name}': {', '.join(map(repr, c.markers))} read as missing"
        return line

    def to_dict(self) -> dict[str, Any]:
        """JSON form (data.json `table.schema`)."""
        return {"columns": [asdict(c) for c in self.columns], "missing": list(self.missing)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TableSchema:
        """Inverse of `to_dict`."""
        return cls([ColumnRole(**c) for c in d["columns"]], tuple(d["missing"]))


def _parse_float(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value


def _encode_column(
    col: ColumnRole, cells: Sequence[str], missing: Sequence[str], source: str
) -> list[list[Any]]:
    """One column's cells → its feature columns (a list of value lists)."""
    absent = set(missing) | set(col.markers)
    if col.role == "categorical":
        return [[None if c in absent else c for c in cells]]
    absent.add("")  # an empty cell can only be missing where numbers are expected
    if col.role == "boolean":
        return [[np.nan if c in absent else float(c.lower() == col.true_value) for c in cells]]
    if col.role == "datetime":
        return _date_parts(cells, absent, col.parts)
    values = []
    for i, c in enumerate(cells):
        v = np.nan if c in absent else _parse_float(c)
        if v is None:
            raise DataError(
                f"{source}: column '{col.name}' is numeric but row {i + 1} holds text {c!r}; "
                f"set data.dataset.roles: {{{col.name}: categorical}}, or add {c!r} to "
                "data.dataset.missing if it marks a missing value"
            )
        values.append(v)
    return [values]


def _parse_dates(cells: Sequence[str], absent: set[str]) -> Any:
    import pandas as pd

    series = pd.Series([None if c in absent else c for c in cells], dtype=object)
    return pd.to_datetime(series, errors="coerce", format="mixed")


def _date_parts(cells: Sequence[str], absent: set[str], parts: Sequence[str]) -> list[list[Any]]:
    dates = _parse_dates(cells, absent)
    out = []
    for part in parts:
        values = getattr(dates.dt, part).astype("float64").to_numpy()
        out.append(values.tolist())
    return out


# ---------------------------------------------------------------------- inference
def infer_schema(
    table: Any,
    features: Sequence[str],
    roles: Mapping[str, str] | None = None,
    missing: Sequence[str] = (),
) -> TableSchema:
    """Infer the role of each of `features` in `table` (a `Table`); `roles` overrides.

    An overridden role is checked against the cells only where it cannot work
    (numeric on text is refused when the features are encoded).
    """
    roles = dict(roles or {})
    unknown = [n for n in roles if n not in table.names]
    if unknown:
        raise DataError(
            f"{table.source}: data.dataset.roles names column '{unknown[0]}', which the file "
            f"lacks; {did_you_mean(unknown[0], table.names)}columns are {', '.join(table.names)}"
        )
    bad = {n: r for n, r in roles.items() if r not in ROLES}
    if bad:
        name, role = next(iter(bad.items()))
        raise DataError(
            f"data.dataset.roles: '{role}' for column '{name}' is not a role; roles are "
            f"{', '.join(ROLES)}"
        )
    columns = []
    for name in features:
        cells = table.column(name)
        forced = roles.get(name)
        columns.append(_decide(name, cells, set(missing), forced))
    return TableSchema(columns, tuple(missing))


def _decide(name: str, cells: Sequence[str], missing: set[str], forced: str | None) -> ColumnRole:
    present = [c for c in cells if c not in missing]
    counts = Counter(present)
    facts = {"missing": len(cells) - len(present), "distinct": len(counts)}
    if forced is not None:
        return _forced(name, forced, present, counts, facts)
    if not counts or (len(counts) == 1 and not facts["missing"]):
        value = next(iter(counts), "")
        return ColumnRole(name, "constant", f"constant: every row holds {value!r}", **facts)
    numeric = _numeric_role(name, cells, present, counts, facts)
    if numeric is not None:
        return numeric
    boolean = _boolean_value(counts)
    if boolean is not None:
        return ColumnRole(name, "boolean", "two values", true_value=boolean, **facts)
    dates = _datetime_role(name, present, missing, facts)
    if dates is not None:
        return dates
    return _text_role(name, present, counts, facts)


def _forced(
    name: str, role: str, present: list[str], counts: Counter, facts: dict
) -> ColumnRole:
    """A role the recipe sets: filled in with what that role needs."""
    reason = "set in data.dataset.roles"
    if role == "boolean":
        true_value = _boolean_value(counts)
        if true_value is None:
            raise DataError(
                f"data.dataset.roles: column '{name}' is set boolean but holds "
                f"{len(counts)} values ({', '.join(list(map(repr, counts))[:4])}); a boolean "
                "column holds two such as yes/no or true/false"
            )
        return ColumnRole(name, role, reason, true_value=true_value, **facts)
    if role == "datetime":
        return ColumnRole(name, role, reason, parts=_date_part_names(present, set()), **facts)
    return ColumnRole(name, role, reason, **facts)


def _numeric_role(
    name: str, cells: Sequence[str], present: list[str], counts: Counter, facts: dict
) -> ColumnRole | None:
    """numeric or identifier when the cells are numbers (a few text markers allowed)."""
    parsed = {c: _parse_float(c) for c in counts}
    text = [c for c, v in parsed.items() if v is None]
    text_rows = sum(counts[c] for c in text)
    too_many = len(present) - text_rows < NUMERIC_SHARE * len(present)
    if text and (len(text) > MAX_TEXT_MARKERS or too_many):
        return None
    if not text and _is_row_identifier(name, cells, present, parsed):
        return ColumnRole(name, "identifier", "identifier: a distinct integer per row", **facts)
    markers = sorted(text)
    reason = "numbers" + (f"; {len(markers)} text value(s) read as missing" if markers else "")
    return ColumnRole(name, "numeric", reason, markers=markers, **facts)


def _is_row_identifier(
    name: str, cells: Sequence[str], present: list[str], parsed: dict[str, float | None]
) -> bool:
    """Distinct integers in every row that count rows, run in order, or are named id."""
    n = len(cells)
    if n < TEXT_MIN_DISTINCT or len(present) != n or len(parsed) != n:
        return False
    values = np.asarray([parsed[c] for c in cells], dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        return False
    steps = np.diff(values)
    counting = values.max() - values.min() + 1 == n
    ordered = bool(np.all(steps > 0) or np.all(steps < 0))
    return counting or ordered or bool(ID_NAME.search(name))


def _boolean_value(counts: Counter) -> str | None:
    """The 'true' spelling when the cells are one of the boolean pairs, else None."""
    values = {c.lower() for c in counts}
    for true, false in BOOLEAN_PAIRS:
        if values == {true, false}:
            return true
    return None


def _datetime_role(
    name: str, present: list[str], missing: set[str], facts: dict
) -> ColumnRole | None:
    sample = present[:: max(1, len(present) // 200)][:200]
    if not sample or sum(bool(DATE_PATTERN.match(c)) for c in sample) < 0.95 * len(sample):
        return None
    parts = _date_part_names(present, missing)
    if not parts:
        return None
    reason = "dates: expanded into " + ", ".join(parts)
    return ColumnRole(name, "datetime", reason, parts=parts, **facts)


def _date_part_names(present: list[str], missing: set[str]) -> list[str]:
    """The parts worth keeping: those that vary in the training cells."""
    dates = _parse_dates(present, missing).dropna()
    if dates.empty:
        return []
    candidates = ("year", "month", "day", "day_of_week", "hour", "minute")
    return [p for p in candidates if getattr(dates.dt, p).nunique() > 1]


def _text_role(name: str, present: list[str], counts: Counter, facts: dict) -> ColumnRole:
    """categorical, or free text / identifier when nearly every row has its own value."""
    distinct = len(counts)
    if distinct == len(present) and distinct >= TEXT_MIN_DISTINCT:
        if not any(" " in c for c in present):
            return ColumnRole(name, "identifier", "identifier: a distinct value per row", **facts)
        reason = f"free text: a distinct value in each of {distinct} rows"
        return ColumnRole(name, "text", reason, **facts)
    if distinct > TEXT_MIN_DISTINCT and distinct > 0.5 * len(present):
        return ColumnRole(
            name,
            "text",
            f"free text: {distinct} distinct values in {len(present)} rows",
            **facts,
        )
    return ColumnRole(name, "categorical", f"text, {distinct} distinct values", **facts)


def roles_from_lists(
    roles: Mapping[str, str],
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    drop: Sequence[str] = (),
) -> dict[str, str]:
    """The recipe's `roles` merged with its shorter `categorical`/`numeric`/`drop` lists."""
    merged = {n: "categorical" for n in categorical}
    merged.update({n: "numeric" for n in numeric})
    merged.update({n: "drop" for n in drop})
    clash = [n for n in merged if n in roles and roles[n] != merged[n]]
    if clash:
        raise DataError(
            f"data.dataset: column '{clash[0]}' is '{merged[clash[0]]}' in one list and "
            f"'{roles[clash[0]]}' in roles; name it once"
        )
    merged.update(roles)
    return merged


def cells_by_column(x: Any, columns: Sequence[str]) -> dict[str, list[str]]:
    """Prediction inputs → text cells by column name, for `TableSchema.encode`.

    `x` may be a `Table` (names and rows), a list of dicts, a dict of columns, anything
    with `.to_dict("records")` (a DataFrame), one dict, or rows already in the order of
    `columns` (the schema's input columns). Extra columns are ignored.
    """
    if hasattr(x, "to_dict") and not isinstance(x, dict):
        x = x.to_dict("records")
    if hasattr(x, "names") and hasattr(x, "rows"):
        return {n: [r[i] for r in x.rows] for i, n in enumerate(x.names)}
    if isinstance(x, dict):
        if x and all(isinstance(v, (list, tuple, np.ndarray)) for v in x.values()):
            return {str(k): [_cell(v) for v in vals] for k, vals in x.items()}
        x = [x]
    if isinstance(x, list) and x and isinstance(x[0], dict):
        names = {k for row in x for k in row}
        return {str(n): [_cell(row.get(n)) for row in x] for n in names}
    arr = np.asarray(x, dtype=object)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        raise DataError(
            f"input rows have {arr.shape[-1]} values; the run needs {len(columns)} columns "
            f"({', '.join(columns)})"
        )
    return {n: [_cell(v) for v in arr[:, j]] for j, n in enumerate(columns)}


def _cell(value: Any) -> str:
    """A value as the text cell a file would hold ('' for None and NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)
