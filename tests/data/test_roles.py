"""Column roles: inferred from the cells, reported, overridable, applied the same everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainlab
from trainlab.data.roles import TableSchema, cells_by_column, infer_schema
from trainlab.data.table import DEFAULT_MISSING, Table
from trainlab.errors import DataError

N = 60


def _table(**columns: list[str]) -> Table:
    names = list(columns)
    rows = [list(r) for r in zip(*columns.values(), strict=True)]
    return Table(names, rows, "t.csv")


def _roles(table: Table, **overrides: str) -> dict[str, str]:
    schema = infer_schema(table, table.names, overrides, DEFAULT_MISSING)
    return {c.name: c.role for c in schema.columns}


def _passenger_like() -> Table:
    rng = np.random.default_rng(0)
    return _table(
        PassengerId=[str(i + 1) for i in range(N)],
        Name=[f"Smith, Mr. John {i}" for i in range(N)],
        Ticket=[f"A/5 {rng.integers(1000, 99999)}" if i % 3 else str(i * 7) for i in range(N)],
        Code=[f"X{i:04d}" for i in range(N)],
        Age=["" if i % 7 == 0 else str(20 + i % 40) for i in range(N)],
        Fare=[f"{rng.uniform(5, 80):.2f}" for _ in range(N)],
        Sex=["male" if i % 2 else "female" for i in range(N)],
        Smoker=["Yes" if i % 3 else "No" for i in range(N)],
        Joined=[f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(N)],
        Country=["Norway"] * N,
        Score=[str(i % 10) if i % 11 else "-" for i in range(N)],
    )


def test_roles_are_inferred_from_the_cells():
    roles = _roles(_passenger_like())
    assert roles == {
        "PassengerId": "identifier",
        "Name": "text",
        "Ticket": "text",
        "Code": "identifier",
        "Age": "numeric",
        "Fare": "numeric",
        "Sex": "categorical",
        "Smoker": "boolean",
        "Joined": "datetime",
        "Country": "constant",
        "Score": "numeric",
    }


def test_encoding_drops_expands_and_marks_missing():
    table = _passenger_like()
    schema = infer_schema(table, table.names, {}, DEFAULT_MISSING)
    assert schema.feature_names == [
        "Age",
        "Fare",
        "Sex",
        "Smoker",
        "Joined.month",
        "Joined.day",
        "Joined.day_of_week",
        "Score",
    ]  # a single year does not vary: no Joined.year
    X = schema.encode(cells_by_column(table, schema.input_columns), "t.csv")
    assert X.shape == (N, 8) and X.dtype == object
    assert np.isnan(X[0, 0]) and X[1, 0] == 21.0  # '' is missing
    assert X[1, 3] == 1.0 and X[0, 3] == 0.0  # Yes → 1, No → 0
    assert (X[0, 4], X[0, 5]) == (1.0, 1.0)  # 2023-01-01
    assert np.isnan(X[0, 7])  # '-' in a column of numbers is a missing marker
    (score,) = [c for c in schema.columns if c.name == "Score"]
    assert score.markers == ["-"]
    line = schema.summary()
    assert "dropped 'PassengerId' (identifier" in line and "'Country' (constant" in line
    assert "'Score': '-' read as missing" in line


def test_recipe_overrides_every_inference():
    table = _passenger_like()
    roles = _roles(table, Ticket="categorical", Age="drop", PassengerId="numeric", Joined="text")
    assert roles["Ticket"] == "categorical" and roles["Age"] == "drop"
    assert roles["PassengerId"] == "numeric" and roles["Joined"] == "text"


def test_bad_overrides_are_named():
    table = _passenger_like()
    with pytest.raises(DataError, match="names column 'Tiket'.*did you mean 'Ticket'"):
        infer_schema(table, table.names, {"Tiket": "categorical"}, DEFAULT_MISSING)
    with pytest.raises(DataError, match="'words' for column 'Name' is not a role"):
        infer_schema(table, table.names, {"Name": "words"}, DEFAULT_MISSING)
    with pytest.raises(DataError, match="'Fare' is set boolean but holds"):
        infer_schema(table, table.names, {"Fare": "boolean"}, DEFAULT_MISSING)


def test_numbers_that_are_not_identifiers_stay_numeric():
    rng = np.random.default_rng(1)
    table = _table(
        heights=[f"{v:.1f}" for v in rng.normal(170, 10, N)],  # distinct floats
        shuffled=[str(v) for v in rng.permutation(np.arange(1000, 1000 + 2 * N))[:N]],
        few=[str(i % 3) for i in range(N)],
    )
    assert set(_roles(table).values()) == {"numeric"}


def test_schema_round_trips_as_json():
    table = _passenger_like()
    schema = infer_schema(table, table.names, {}, DEFAULT_MISSING)
    again = TableSchema.from_dict(json.loads(json.dumps(schema.to_dict())))
    cells = cells_by_column(table, schema.input_columns)
    a, b = schema.encode(cells, "a"), again.encode(cells, "b")
    assert again.feature_names == schema.feature_names
    assert all(
        (x == y) or (x != x and y != y) for x, y in zip(a.ravel(), b.ravel(), strict=True)
    )


def test_a_run_reports_its_schema_and_predicts_from_records(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["id,name,joined,smoker,age,label"]
    for i in range(120):
        age = rng.integers(18, 80)
        label = "high" if age > 45 else "low"
        joined = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        lines.append(f"{i},Person number {i},{joined},{'yes' if i % 2 else 'no'},{age},{label}")
    path = tmp_path / "people.csv"
    path.write_text("\n".join(lines) + "\n")
    recipe = {
        "data": {"dataset": {"name": "csv", "path": str(path), "target": "label"}},
        "model": "mlp",
        "train": {"epochs": 30, "lr": 0.01},
    }
    run = trainlab.train(recipe, out=tmp_path / "run")
    info = json.loads((run.run_dir / "data.json").read_text())
    roles = {c["name"]: c["role"] for c in info["table"]["schema"]["columns"]}
    assert roles == {
        "id": "identifier",
        "name": "text",
        "joined": "datetime",
        "smoker": "boolean",
        "age": "numeric",
    }
    model = trainlab.load(run.run_dir)
    rows = [
        {"joined": "2024-03-05", "smoker": "no", "age": 75},
        {"age": 20, "smoker": "yes", "joined": "2024-07-01"},
    ]
    # dropped columns are not needed; dates are expanded as in training
    assert model.labels(model.predict(rows)) == ["high", "low"]
