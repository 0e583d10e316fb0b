"""`trainlab techniques` lists every registered technique with its one-line description."""

from __future__ import annotations

import json

from trainlab.catalog import TECHNIQUES

from ..test_cli import cli


def test_techniques_json_lists_every_technique_with_description_and_parameters():
    result = cli("techniques", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.strip().splitlines()[-1])["techniques"]
    assert [r["name"] for r in rows] == TECHNIQUES.names()
    by_name = {r["name"]: r for r in rows}
    assert "ema" in by_name and "swa" in by_name["ema"]["conflicts"]
    assert "decay" in by_name["ema"]["parameters"]
    assert all(r["description"] and "\n" not in r["description"] for r in rows)


def test_techniques_table_shows_each_name():
    result = cli("techniques")
    assert result.returncode == 0
    for name in ("mixup", "early_stopping", "grad_accumulation", "mixed_precision"):
        assert name in result.stdout
