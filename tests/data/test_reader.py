"""read_table on real-world delimited files: delimiters, headers, encodings, bad input."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from trainlab.config.loading import load_recipe
from trainlab.data import DATASETS
from trainlab.data.table import detect_delimiter, looks_like_header, read_table
from trainlab.errors import DataError, RecipeError
from trainlab.predict import read_run_table

# real lines of UCI auto-mpg.data: aligned with spaces, a TAB before the quoted car name
AUTO_MPG = (
    '18.0   8   307.0      130.0      3504.      12.0   70  1\t"chevrolet chevelle malibu"\n'
    '15.0   8   350.0      165.0      3693.      11.5   70  1\t"buick skylark 320"\n'
    '25.0   4   98.00      ?          2046.      19.0   71  1\t"ford pinto"\n'
)
# UCI housing.data: leading spaces, runs of spaces, no header
HOUSING = (
    " 0.00632  18.00   2.310  0  0.5380  6.5750  65.20  4.0900   1  296.0  15.30 396.90"
    "   4.98  24.00\n"
    " 0.02731   0.00   7.070  0  0.4690  6.4210  78.90  4.9671   2  242.0  17.80 396.90"
    "   9.14  21.60\n"
    " 0.02729   0.00   7.070  0  0.4690  7.1850  61.10  4.9671   2  242.0  17.80 392.83"
    "   4.03  34.70\n"
)
# UCI abalone.data: the first column is text, no header
ABALONE = (
    "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n"
    "M,0.35,0.265,0.09,0.2255,0.0995,0.0485,0.07,7\n"
    "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21,9\n"
    "I,0.44,0.365,0.125,0.516,0.2155,0.114,0.155,10\n"
)
ADULT_LIKE = (
    "age,workclass,fnlwgt,education,income\n"
    "39,State-gov,77516,Bachelors,<=50K\n"
    "50,Self-emp-not-inc,83311,Bachelors,<=50K\n"
    "38,Private,215646,HS-grad,<=50K\n"
)


def _write(path, text: str | bytes):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _csv(**params):
    entry = DATASETS.get("csv")
    return entry.builder(entry.params(**params))


def test_auto_mpg_tab_and_aligned_spaces_read_as_whitespace(tmp_path):
    table = read_table(_write(tmp_path / "auto-mpg.data", AUTO_MPG))
    assert table.format == {"delimiter": "whitespace", "header": False, "encoding": "utf-8"}
    assert table.names == [f"c{i}" for i in range(9)]
    assert table.rows[0] == [
        "18.0", "8", "307.0", "130.0", "3504.", "12.0", "70", "1", "chevrolet chevelle malibu",
    ]  # fmt: skip
    assert table.rows[1][-1] == "buick skylark 320" and table.rows[2][3] == "?"


def test_housing_leading_spaces_and_runs_of_spaces(tmp_path):
    table = read_table(_write(tmp_path / "housing.data", HOUSING))
    assert table.format["delimiter"] == "whitespace" and table.format["header"] is False
    assert len(table.names) == 14 and len(table) == 3
    assert table.rows[0][0] == "0.00632" and table.rows[2][-1] == "34.70"


def test_abalone_text_first_column_is_not_a_header(tmp_path):
    table = read_table(_write(tmp_path / "abalone.data", ABALONE))
    assert table.format["header"] is False and table.names[0] == "c0"
    assert len(table) == 4 and table.rows[0][0] == "M"


def test_header_is_detected_both_ways(tmp_path):
    with_header = read_table(_write(tmp_path / "adult.csv", ADULT_LIKE))
    assert with_header.format["header"] is True and with_header.names[:2] == ["age", "workclass"]
    assert len(with_header) == 3
    text_only = read_table(_write(tmp_path / "t.csv", "color,size\nred,big\nblue,small\n"))
    assert text_only.names == ["color", "size"]
    repeated = read_table(_write(tmp_path / "r.csv", "red,big\nblue,small\nred,small\n"))
    assert repeated.names == ["c0", "c1"] and len(repeated) == 3
    assert looks_like_header([["x", "y"], ["1", "2"], ["3", "?"]])
    assert not looks_like_header([["1", "2"], ["3", "4"]])
    assert not looks_like_header([["?", "2"], ["3", "4"], ["5", "6"]])  # a missing marker


def test_explicit_header_overrides_detection(tmp_path):
    path = _write(tmp_path / "n.csv", "1,2\n3,4\n")
    assert read_table(path, header=True).names == ["1", "2"]
    assert read_table(path, header=False).names == ["c0", "c1"]
    assert read_table(_write(tmp_path / "a.csv", ADULT_LIKE), header=False).rows[0][0] == "age"


def test_trailing_separator_on_one_line_and_on_all(tmp_path):
    one = read_table(_write(tmp_path / "one.csv", "a,b,c\n1,2,3,\n4,5,6\n"))
    assert one.names == ["a", "b", "c"] and one.rows == [["1", "2", "3"], ["4", "5", "6"]]
    every = read_table(_write(tmp_path / "all.csv", "a,b,c,\n1,2,3,\n4,5,6,\n"))
    assert every.names == ["a", "b", "c"] and every.rows == [["1", "2", "3"], ["4", "5", "6"]]
    spaces = read_table(_write(tmp_path / "sp.txt", "1 2 3   \n4 5 6 \n"))
    assert spaces.rows == [["1", "2", "3"], ["4", "5", "6"]]
    empty_last = read_table(_write(tmp_path / "e.csv", "x,y,z\n1,2,\n4,5,6\n"))
    assert empty_last.rows == [["1", "2", ""], ["4", "5", "6"]]  # a real empty cell stays


def test_semicolons_inside_quoted_fields(tmp_path):
    text = 'name;note;score\n"Smith; J.";"a;b";1.5\nDoe;"plain";2\n'
    table = read_table(_write(tmp_path / "s.csv", text))
    assert table.format["delimiter"] == ";"
    assert table.rows == [["Smith; J.", "a;b", "1.5"], ["Doe", "plain", "2"]]


@pytest.mark.parametrize("sep", ["\t", "|", ";", ","])
def test_single_character_delimiters(tmp_path, sep):
    text = ADULT_LIKE.replace(",", sep)
    table = read_table(_write(tmp_path / "t.txt", text))
    assert table.format["delimiter"] == sep and table.names[-1] == "income"
    assert table.rows[1] == ["50", "Self-emp-not-inc", "83311", "Bachelors", "<=50K"]


def test_tsv_extension_means_tab(tmp_path):
    table = read_table(_write(tmp_path / "t.tsv", "a b\tc\n1 2\t3\n4 5\t6\n"))
    assert table.format["delimiter"] == "\t" and table.rows[0] == ["1 2", "3"]


def test_cp1252_bytes_and_a_bom(tmp_path):
    cp = read_table(_write(tmp_path / "c.csv", "city,n\nCafé,1\nZürich,2\n".encode("cp1252")))
    assert cp.format["encoding"] == "cp1252" and cp.rows[0][0] == "Café"
    bom = read_table(_write(tmp_path / "b.csv", "\ufeffcity,n\nCafé,1\n".encode()))
    assert bom.names == ["city", "n"] and bom.format["encoding"] == "utf-8-sig"
    latin = read_table(_write(tmp_path / "l.csv", b"city,n\nx\x81y,1\n"))  # 0x81: not cp1252
    assert latin.format["encoding"] == "latin-1" and latin.rows[0][0] == "x\x81y"
    with pytest.raises(DataError, match=r"not valid utf-8 \(byte 10\); set data.dataset.encoding"):
        read_table(tmp_path / "c.csv", encoding="utf-8")
    assert read_table(tmp_path / "c.csv", encoding="latin-1").rows[0][0] == "Café"


@pytest.mark.parametrize("name", ["t.data", "t.txt", "t", "t.csv", "T.DAT"])
def test_any_extension_reads_the_same(tmp_path, name):
    table = read_table(_write(tmp_path / name, ABALONE))
    assert table.format["delimiter"] == "," and len(table) == 4 and len(table.names) == 9


def test_explicit_space_and_tab(tmp_path):
    path = _write(tmp_path / "m.data", AUTO_MPG)
    spaced = read_table(path, delimiter=" ")
    assert spaced.format["delimiter"] == "whitespace" and len(spaced.names) == 9
    tabbed = read_table(path, delimiter="\t", header=False)
    assert tabbed.format["delimiter"] == "\t" and len(tabbed.names) == 2
    assert tabbed.rows[0][1] == "chevrolet chevelle malibu"
    assert read_table(path, delimiter="whitespace").rows == spaced.rows


def test_csv_params_refuse_a_multi_character_delimiter():
    dataset = {"name": "csv", "path": "x.csv", "target": "y", "delimiter": "ab"}
    with pytest.raises(RecipeError) as info:
        load_recipe({"data": {"dataset": dataset}, "model": "mlp"})
    message = str(info.value)
    assert "'whitespace'" in message and "one character" in message and "'ab'" in message
    assert len(message.splitlines()) == 1
    with pytest.raises(DataError, match="delimiter 'ab' is not usable"):
        read_table("x.csv", delimiter="ab")
    for key, value, words in (("header", "maybe", "auto, true or false"),
                              ("encoding", "nope", "use auto")):  # fmt: skip
        with pytest.raises(RecipeError, match=words):
            load_recipe({"data": {"dataset": {**dataset, "delimiter": ",", key: value}}})
    params = DATASETS.get("csv").params(path="x", target="y")
    assert (params.delimiter, params.header, params.encoding) == ("auto", "auto", "auto")
    for given, kept in (("\\t", "\t"), ("tab", "\t"), (" ", " "), ("whitespace", "whitespace")):
        assert DATASETS.get("csv").params(path="x", target="y", delimiter=given).delimiter == kept


def test_space_delimiter_loads_a_whitespace_file(tmp_path):
    rng = random.Random(0)
    lines = [f"  {rng.uniform(0, 9):.3f}   {rng.randint(0, 5)}  {i % 2}" for i in range(40)]
    path = _write(tmp_path / "w.data", "\n".join(lines) + "\n")
    for delimiter in (" ", "whitespace", "auto"):
        data = _csv(path=str(path), target="c2", delimiter=delimiter)
        assert data.X.shape == (40, 2) and data.classes == ["0", "1"]


def test_ragged_rows_name_the_row_and_both_counts(tmp_path):
    path = _write(tmp_path / "r.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert "data row 2 (line 3) has 2 fields, the header has 3" in message
    assert "data.dataset.delimiter" in message and "quote" in message
    long = _write(tmp_path / "l.csv", "a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(DataError, match="data row 2 .* has 4 fields, the header has 2"):
        read_table(long)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "is empty"),
        ("  \n\n", "is empty"),
        ("a,b,y\n", "has a header but no data rows .*header: false"),
        ("a,a,y\n1,2,3\n", r"duplicate column names \['a'\]; rename them"),
        (b"PK\x03\x04\x00\x00binary\x00", "binary file"),
        (",,\n,,\n", "separators but no values"),
        ('a,b\n"open,1\n', "line 2.* the quotes there"),
        ('a,b\n1,2\n3,"open\n', "cannot be parsed .*EOF inside string.*quot"),
    ],
)
def test_bad_files_end_in_one_line(tmp_path, content, match):
    path = _write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError, match=match) as info:
        read_table(path)
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "nowhere.csv")


def test_comment_lines_are_skipped(tmp_path):
    text = "|1x3 Cross validator\nage,job,y\n25, Private, 1\n|a note\n38, Self, 0\n"
    table = read_table(_write(tmp_path / "adult.test", text), skip_prefix="|")
    assert table.names == ["age", "job", "y"] and table.rows[1] == ["38", "Self", "0"]


def test_detect_delimiter_rules():
    assert detect_delimiter("a, b, c\n1, 2, 3\n") == ","  # spaces after commas
    assert detect_delimiter("first name,last name\nJohn Smith,Jane Doe\n") == ","
    assert detect_delimiter("a;b\n1,5;2,5\n") == ";"
    assert detect_delimiter(AUTO_MPG) == "whitespace"
    assert detect_delimiter("one\ntwo\n") == ","  # a single column


def test_headerless_csv_trains_on_c_names(tmp_path):
    rows = [f"{i % 3},{i * 0.5},{'ab'[i % 2]}" for i in range(30)]
    path = _write(tmp_path / "h.data", "\n".join(rows) + "\n")
    data = _csv(path=str(path), target="c2")
    assert data.X.shape == (30, 2) and data.classes == ["a", "b"]
    with pytest.raises(DataError, match="first row looks like data.*header: true"):
        _csv(path=str(path), target="label")


def test_prediction_files_use_the_runs_reader(tmp_path):
    params = SimpleNamespace(delimiter="auto", header="auto", encoding="auto", target="c8",
                             drop=[])  # fmt: skip
    reader = {"delimiter": "whitespace", "header": False, "encoding": "utf-8"}
    features = [f"c{i}" for i in range(8)]
    path = _write(tmp_path / "new.data", AUTO_MPG)
    table = read_run_table(path, params, features, reader)
    assert table.names == [f"c{i}" for i in range(9)] and table.rows[0][-1].startswith("chev")
    cut = _write(
        tmp_path / "cut.data", "".join(ln.split("\t")[0] + "\n" for ln in AUTO_MPG.splitlines()[:2])
    )
    assert read_run_table(cut, params, features, reader).names == features
    # a recorded header: rows without one are still rows, a header still a header
    reader = {"delimiter": ",", "header": True, "encoding": "cp1252"}
    params.target = "income"
    adult = _write(tmp_path / "a.txt", ADULT_LIKE)
    assert read_run_table(adult, params, ["age", "workclass"], reader).names[0] == "age"
    body = _write(tmp_path / "b.txt", "".join(ADULT_LIKE.splitlines(True)[1:]))
    names = ["age", "workclass", "fnlwgt", "education", "income"]
    assert read_run_table(body, params, names, reader).rows[0][1] == "State-gov"
