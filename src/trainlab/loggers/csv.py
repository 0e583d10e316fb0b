"""`train.loggers: [csv]` — `<run_dir>/log.csv`, one row per epoch, every history key.

For spreadsheets and `pandas.read_csv`. Each epoch appends its row; the file is
rewritten whole (atomically) when the fit starts, from the rows the run has (so a
resumed run drops what a killed one wrote after its last checkpoint), and when a key
appears that the header lacks (a technique's), which becomes a new column.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from trainlab.engine.state import State
from trainlab.fileio import atomic_write_text
from trainlab.loggers.base import Logger, Point

FILE_NAME = "log.csv"


class CsvLogger(Logger):
    """Writes the run's history as CSV: columns in first-seen order, one row per epoch."""

    name = "csv"

    def start(self, state: State) -> tuple[int, int]:
        """Take the (restored) history as the file's rows, dropping any a killed run
        wrote after its last checkpoint."""
        self.rows: list[dict[str, Any]] = [dict(r) for r in state.history]
        self._save()
        return state.epoch, state.step

    def write(self, rows: list[dict[str, Any]], points: list[Point]) -> None:
        """Append the epochs' rows (the whole file again when a column is new)."""
        new = [dict(r) for r in rows]
        self.rows.extend(new)
        if self.columns and all(k in self.columns for row in new for k in row):
            with (self.context.run_dir / FILE_NAME).open("a", encoding="utf-8") as f:
                f.write(_csv(self.columns, new, header=False))
        else:
            self._save()

    def _save(self) -> None:
        path = self.context.run_dir / FILE_NAME
        self.columns = list(dict.fromkeys(k for row in self.rows for k in row))
        if not self.rows:
            path.unlink(missing_ok=True)
            return
        atomic_write_text(path, _csv(self.columns, self.rows, header=True))


def _csv(columns: list[str], rows: list[dict[str, Any]], header: bool) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()
