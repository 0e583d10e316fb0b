"""Fuzzing read_table: every damaged file either reads into a well-formed Table or ends
in one DataError of one line; no other exception escapes, and nothing is slow."""

from __future__ import annotations

import random
import time

import pytest

from trainlab.data.table import Table, read_table
from trainlab.errors import DataError

DELIMITERS = [",", ";", "\t", "|", " "]
WORDS = ["red", "blue", "Café", "a b", "x,y", 'say "hi"', "?", "", "NA", "Zürich", "o'brien"]


def _cell(rng: random.Random, sep: str) -> str:
    kind = rng.random()
    if kind < 0.5:
        return f"{rng.uniform(-1e3, 1e3):.{rng.randint(0, 4)}f}"
    word = rng.choice(WORDS)
    if sep in word or '"' in word or (sep == " " and " " in word):
        return '"' + word.replace('"', '""') + '"'
    return word


def _table_text(rng: random.Random) -> tuple[str, str]:
    sep = rng.choice(DELIMITERS)
    width, height = rng.randint(1, 8), rng.randint(1, 30)
    lines = [sep.join(f"col{j}" for j in range(width))] if rng.random() < 0.6 else []
    lines += [sep.join(_cell(rng, sep) for _ in range(width)) for _ in range(height)]
    return "\n".join(lines) + "\n", sep


def _mutate(rng: random.Random, text: str, sep: str, kind: int) -> bytes:
    lines = text.splitlines()
    if kind == 0:  # truncated rows
        for i in rng.sample(range(len(lines)), k=min(len(lines), rng.randint(1, 3))):
            cut = lines[i].split(sep)
            lines[i] = sep.join(cut[: rng.randint(0, len(cut))])
    elif kind == 1:  # stray quotes
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(lines))
            at = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:at] + '"' + lines[i][at:]
    elif kind == 2:  # extra fields and trailing separators
        for i in rng.sample(range(len(lines)), k=min(len(lines), rng.randint(1, 4))):
            lines[i] += sep * rng.randint(1, 2) + ("x" if rng.random() < 0.5 else "")
    elif kind == 3:  # the file cut at a random byte
        raw = text.encode("utf-8")
        return raw[: rng.randint(0, len(raw))]
    elif kind == 4:  # random bytes flipped, a NUL now and then
        raw = bytearray(text.encode("utf-8"))
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    elif kind == 5:  # blank lines, comments, CRLF, a BOM
        lines = [ln for line in lines for ln in ([line, ""] if rng.random() < 0.3 else [line])]
        lines.insert(rng.randint(0, len(lines)), "# a comment")
        raw = "\r\n".join(lines).encode("utf-8")
        return (b"\xef\xbb\xbf" if rng.random() < 0.5 else b"") + raw
    elif kind == 6:  # legacy encoding
        return "\n".join(lines).encode("cp1252", errors="replace")
    elif kind == 7:  # very long lines
        lines.append(sep.join("9" * rng.randint(1, 50_000) for _ in range(rng.randint(1, 4))))
    return "\n".join(lines).encode("utf-8")


def _garbage(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 4096)))


def _check(path, **options) -> Table | None:
    try:
        table = read_table(path, **options)
    except DataError as exc:
        message = str(exc)
        assert message and len(message.splitlines()) == 1, message
        return None
    assert isinstance(table, Table) and table.names and len(table) >= 1
    assert all(len(row) == len(table.names) for row in table.rows)
    assert all(isinstance(c, str) and c == c.strip() for row in table.rows for c in row)
    assert set(table.format) == {"delimiter", "header", "encoding"}
    if not table.format["header"]:
        assert table.names == [f"c{i}" for i in range(len(table.names))]
    return table


@pytest.mark.parametrize("seed", range(180))
def test_damaged_files_read_or_fail_in_one_line(tmp_path, seed):
    rng = random.Random(seed)
    kind = seed % 10
    if kind >= 8:
        raw = _garbage(rng)
    else:
        text, sep = _table_text(rng)
        raw = _mutate(rng, text, sep, kind)
    path = tmp_path / rng.choice(["t.csv", "t.tsv", "t.data", "t.txt", "t"])
    path.write_bytes(raw)
    options = {
        "delimiter": rng.choice(["auto"] * 4 + DELIMITERS + ["whitespace"]),
        "header": rng.choice(["auto", "auto", True, False]),
        "encoding": rng.choice(["auto", "auto", "utf-8", "latin-1"]),
        "skip_prefix": rng.choice([None, "#"]),
    }
    _check(path, **options)


@pytest.mark.parametrize("seed", range(10))
def test_undamaged_tables_read_back_their_shape(tmp_path, seed):
    rng = random.Random(1000 + seed)
    text, sep = _table_text(rng)
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    table = _check(path, delimiter=sep)
    first = text.splitlines()[0]
    if table is not None and first.startswith("col"):
        assert table.names == first.split(sep) or not table.format["header"]


def test_ten_thousand_columns_read_quickly(tmp_path):
    rng = random.Random(7)
    names = ",".join(f"f{j}" for j in range(10_000))
    rows = [",".join(str(rng.randint(0, 99)) for _ in range(10_000)) for _ in range(20)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join([names, *rows]) + "\n")
    times = []
    for header in ("auto", False):  # about 0.6 s each on an idle machine
        start = time.perf_counter()
        table = read_table(path, header=header)
        times.append(time.perf_counter() - start)
        assert len(table.names) == 10_000 and len(table) == 20 + (header is False)
        assert table.format["header"] is (header == "auto")
    assert min(times) < 2.0, f"{times} s"


@pytest.mark.parametrize(
    ("content", "names", "rows"),
    [
        ("only\n", None, 0),  # a header alone: no data rows
        ("x\n1\n2\n3\n", ["x"], 3),  # a single column
        ("1\n2\n", ["c0"], 2),
        ("", None, 0),
    ],
)
def test_edge_shapes(tmp_path, content, names, rows):
    path = tmp_path / "e.csv"
    path.write_text(content)
    table = _check(path)
    assert (table is None) == (names is None)
    if table is not None:
        assert table.names == names and len(table) == rows
