"""`trainlab predict` reads rows in the format the run was trained on (issue 15, item 5)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

import trainlab
from trainlab.predict import read_run_table

from .conftest import EXAMPLES
from .test_cli import cli, last_json

CENSUS = EXAMPLES / "data" / "census_sample.csv"


@pytest.fixture(scope="module")
def semicolon_run(tmp_path_factory):
    """A 2-epoch run on a `;`-separated copy of the census sample, `fnlwgt` dropped."""
    tmp = tmp_path_factory.mktemp("semicolon")
    lines = CENSUS.read_text().splitlines()[:301]
    data = tmp / "census.csv"
    data.write_text("\n".join(line.replace(",", ";") for line in lines) + "\n")
    recipe = {
        "data": {
            "dataset": {
                "name": "csv",
                "path": str(data),
                "target": "income",
                "delimiter": ";",
                "drop": ["fnlwgt"],
            }
        },
        "model": "mlp",
        "train": {"epochs": 2},
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = cli(
        "train", str(path), "--out", str(tmp / "run"), "--set", "train.threads=1", "--json"
    )
    assert result.returncode == 0, result.stderr
    return tmp / "run", data, lines


def _predict(run, inputs, out):
    json_result = cli("predict", str(run), str(inputs), "--json")
    assert json_result.returncode == 0, json_result.stderr
    out_result = cli("predict", str(run), str(inputs), "--out", str(out))
    assert out_result.returncode == 0, out_result.stderr
    written = out.read_text().splitlines()
    assert written[0] == "prediction"
    return last_json(json_result), written[1:], json_result.stderr


def test_predict_reads_the_runs_own_semicolon_file_with_its_target(semicolon_run, tmp_path):
    run, data, lines = semicolon_run
    result, written, stderr = _predict(run, data, tmp_path / "p.csv")
    assert result["count"] == 300 and len(result["predictions"]) == 300
    assert result["predictions"] == written  # --json and --out give the same labels
    assert set(written) <= {"<=50K", ">50K"}
    classes = trainlab.load(run).info.classes
    assert [classes[i] for i in result["indices"]] == result["predictions"]
    assert (
        result["indices"]
        == trainlab.load(run).predict(trainlab.load(run).read_inputs(data)).tolist()
    )
    # categories only the val/test rows hold are unseen by the fitted preprocessing
    unseen = trainlab.load(run).unseen_categories(trainlab.load(run).read_inputs(data))
    assert result["unseen_categories"] == {c: n for c, (n, _) in unseen.items()}
    assert sum(ln.startswith("warning: column") for ln in stderr.splitlines()) == len(unseen)


def test_predict_reads_a_data_file_without_the_target(semicolon_run, tmp_path):
    run, data, lines = semicolon_run
    without = tmp_path / "new.data"  # no target column, an extension predict never knew
    without.write_text("\n".join(";".join(line.split(",")[:-1]) for line in lines[:41]) + "\n")
    result, written, _ = _predict(run, without, tmp_path / "p.csv")
    full, _, _ = _predict(run, data, tmp_path / "full.csv")
    assert result["count"] == 40 and written == result["predictions"]
    assert result["indices"] == full["indices"][:40]  # same rows, same predictions


def test_predict_warns_once_per_column_about_unseen_categories(semicolon_run, tmp_path):
    run, data, lines = semicolon_run
    header = lines[0].split(",")
    model = trainlab.load(run)
    seen = [  # rows whose every category the training rows had
        line.split(",")
        for line in lines[1:]
        if not model.unseen_categories([dict(zip(header, line.split(","), strict=True))])
    ]
    rows = seen[:10]
    workclass, country = header.index("workclass"), header.index("native-country")
    for row in rows[:3]:
        row[workclass] = "Poisoned-gov"
    rows[5][country] = "Atlantis"
    inputs = tmp_path / "unseen.csv"
    inputs.write_text("\n".join(";".join(r) for r in [header, *rows]) + "\n")
    result, written, stderr = _predict(run, inputs, tmp_path / "p.csv")
    assert result["count"] == 10 and written == result["predictions"]
    assert result["unseen_categories"] == {"workclass": 3, "native-country": 1}
    warnings = [ln for ln in stderr.splitlines() if ln.startswith("warning:")]
    assert warnings == [
        "warning: column 'workclass': 3 rows hold categories unseen in training "
        "(e.g. 'Poisoned-gov'); they are encoded as unknown",
        "warning: column 'native-country': 1 row holds categories unseen in training "
        "(e.g. 'Atlantis'); they are encoded as unknown",
    ]


def test_headerless_rows_take_the_training_names(tmp_path):
    params = SimpleNamespace(delimiter=";", header=False, encoding="utf-8", target="c1", drop=[])
    path = tmp_path / "rows"
    path.write_text("1;x\n2;y\n")  # the target c1 absent: c0, c2 remain
    assert read_run_table(path, params, ["c0", "c2"]).names == ["c0", "c2"]
    path.write_text("1;a;x\n2;b;y\n")
    assert read_run_table(path, params, ["c0", "c2"]).names == ["c0", "c1", "c2"]
    params.header = True  # trained with a header, given numbers only: training order
    path.write_text("1;2\n3;4\n")
    table = read_run_table(path, params, ["age", "hours"])
    assert table.names == ["age", "hours"] and table.rows == [["1", "2"], ["3", "4"]]
