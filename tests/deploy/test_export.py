"""`trainlab export` end to end: real runs become artifact folders whose outputs match
PyTorch's and which a consumer calls with onnxruntime + numpy (or torch) alone; bad input,
a failed parity check and foreign folders are refused without writing anything."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import trainlab
from tests.conftest import BREAST_CANCER, DIGITS
from tests.test_cli import cli
from trainlab.deploy import export_formats
from trainlab.deploy.export import ParityError, export_run, parity_inputs
from trainlab.errors import RecipeError, RunError

REGRESSION = {
    "name": "diabetes",
    "data": {"dataset": "diabetes", "preprocessing": {"scale": "standard"}},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.01},
}
TEXT = {
    "name": "polarity",
    "data": {"dataset": "rt_polarity", "train_per_class": 60, "val_size": 0,
             "preprocessing": {"text": {"max_len": 20}}},
    "model": {"name": "text_rnn", "embedding_dim": 8, "hidden": 6, "pooling": "attention"},
    "train": {"epochs": 1, "batch_size": 32},
}  # fmt: skip


def _recipe(base: dict, **model) -> dict:
    recipe = copy.deepcopy(base)
    recipe["model"].update(model)
    return recipe


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Small real runs: digits (multiclass MLP), breast cancer (binary), diabetes
    (regression), and one fine-tuned from the digits run (model.init_from)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINLAB_RUNS", str(root))
        mp.setenv("TRAINLAB_STORE", f"sqlite:///{root / 'index.db'}")
        made = {
            "digits": trainlab.train(_recipe(DIGITS, hidden=[64]), out=root / "digits"),
            "binary": trainlab.train(copy.deepcopy(BREAST_CANCER), out=root / "bc"),
            "regression": trainlab.train(copy.deepcopy(REGRESSION), out=root / "diabetes"),
        }
        tuned = _recipe(DIGITS, hidden=[64], init_from={"run": str(root / "digits")})
        tuned["train"]["epochs"] = 1
        made["finetuned"] = trainlab.train(tuned, out=root / "tuned")
    return {name: run.run_dir for name, run in made.items()}


def _readme_code(folder) -> str:
    text = (folder / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("pt2", marks=pytest.mark.slow)])
def test_export_folder_is_self_contained_and_its_readme_example_predicts_like_trainlab(
    runs, tmp_path, fmt
):
    result = export_run(runs["digits"], fmt, out=tmp_path / "export")
    data = result.to_dict()
    out = tmp_path / "export"
    assert data["parity"] is True and data["out"] == str(out)
    assert data["max_abs_diff"] <= 1e-4 and data["tolerance_used"] <= 1
    assert data["accuracy_torch"] == data["accuracy_export"]
    metrics = json.loads((runs["digits"] / "metrics.json").read_text())
    assert data["accuracy_torch"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert data["samples"] == len(parity_inputs(trainlab.load(runs["digits"]))[1])
    files = {p.name for p in out.iterdir()}
    assert files == {f"model.{fmt}", "export.json", "README.md", "preprocess.json",
                     "data.json", "recipe.yaml", "metrics.json"}  # fmt: skip
    meta = json.loads((out / "export.json").read_text())
    assert meta["input"] == {"name": "input", "shape": [None, 64], "dtype": "float32"}
    assert meta["output"]["shape"] == [None, 10] and meta["classes"] == [str(i) for i in range(10)]
    assert meta["source_run"] == str(runs["digits"].resolve()) and meta["recipe_hash"]
    assert meta["parity"]["passed"] and meta["parity"]["samples"] == data["samples"]
    assert meta["target_shift"] is None and meta["format"] == fmt
    # a consumer with only the folder: preprocess as README says (digits: min-max scaling,
    # here from preprocess.json), run the README's example, get trainlab predict's labels
    rows = np.random.default_rng(0).uniform(0, 16, size=(7, 64))
    pre = json.loads((out / "preprocess.json").read_text())["params"]
    np.save(out / "inputs.npy", (rows - np.asarray(pre["shift"])) / np.asarray(pre["scale"]))
    code = _readme_code(out) + "\nprint(json.dumps([str(v) for v in labels]))\n"
    ran = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    expected = trainlab.load(runs["digits"]).labels(trainlab.load(runs["digits"]).predict(rows))
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == [str(v) for v in expected]


def test_default_folder_is_in_the_run_and_a_second_export_replaces_the_first(runs):
    first = export_run(runs["binary"], "pt2")
    out = runs["binary"] / "export" / "pt2"
    assert first.out == out and (out / "model.pt2").is_file()
    (out / "stale.txt").write_text("from the first export")
    second = export_run(runs["binary"], "pt2")
    assert second.parity.passed and not (out / "stale.txt").exists()
    meta = json.loads((out / "export.json").read_text())
    assert meta["target_kind"] == "binary" and meta["output"]["shape"] == [None, 1]
    assert meta["output"]["kind"] == "logit"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no leftovers


def test_regression_export_reports_rmse_and_the_unscaling(runs, tmp_path):
    data = export_run(runs["regression"], "onnx", out=tmp_path / "r").to_dict()
    assert data["parity"] and data["metric"] == "rmse" and "accuracy_torch" not in data
    assert data["rmse_torch"] == pytest.approx(data["rmse_export"], rel=1e-4)
    metrics = json.loads((runs["regression"] / "metrics.json").read_text())
    assert data["rmse_torch"] == pytest.approx(metrics["test_rmse"], rel=1e-4)
    meta = json.loads((tmp_path / "r" / "export.json").read_text())
    info = trainlab.load(runs["regression"]).info
    assert meta["target_shift"] == info.target_shift and meta["target_scale"] != 1.0
    assert "target_scale" in _readme_code(tmp_path / "r")


def test_fine_tuned_and_pruned_runs_export_int8_is_refused_naming_the_layer(runs, tmp_path):
    from trainlab.compress.api import compress

    tuned = export_run(runs["finetuned"], "pt2", out=tmp_path / "tuned")
    assert tuned.parity.passed
    pruned = compress(runs["digits"], ["neurons:0.5"], None, finetune=0, target_drop=None,
                      out=tmp_path / "pruned")  # fmt: skip
    result = export_run(pruned.run_dir, "pt2", out=tmp_path / "pruned-export")
    assert result.parity.passed and result.meta["compression"] == ["neurons:0.5"]
    assert result.meta["input"]["shape"] == [None, 64]
    q = compress(runs["digits"], [], "int8", finetune=0, target_drop=None, out=tmp_path / "q")
    with pytest.raises(RunError, match=r"int8.*layer '1' \(.*Linear\).*cannot trace"):
        export_run(q.run_dir, "onnx", out=tmp_path / "q-export")
    assert not (tmp_path / "q-export").exists()


def test_text_rnn_run_exports_token_ids(tmp_path):
    # pt2 here (test_export_models runs text_rnn through ONNX too)
    run = trainlab.train(copy.deepcopy(TEXT), out=tmp_path / "text")
    data = export_run(run.run_dir, "pt2", out=tmp_path / "x").to_dict()
    assert data["parity"] and data["accuracy_torch"] == data["accuracy_export"]
    assert data["input"] == {"name": "input", "shape": [None, 20], "dtype": "int64"}
    readme = (tmp_path / "x" / "README.md").read_text()
    assert "vocab.itos" in readme and "right-pad with 0" in readme


def _perturbed(scale: float):
    """An artifact runner whose outputs are the real artifact's times (1 + scale)."""
    real = export_formats.runner

    def runner(fmt, path, threads):
        run = real(fmt, path, threads)
        return lambda x: run(x) * (1 + scale)

    return runner


def test_a_failed_parity_check_writes_nothing_and_keeps_the_previous_export(
    runs, tmp_path, monkeypatch
):
    out = tmp_path / "e"
    export_run(runs["digits"], "pt2", out=out)
    before = (out / "export.json").read_text()
    monkeypatch.setattr(export_formats, "runner", _perturbed(0.01))
    with pytest.raises(ParityError, match="parity check failed.*nothing was written") as caught:
        export_run(runs["digits"], "pt2", out=out)
    data = caught.value.result.to_dict()
    assert data["parity"] is False and data["tolerance_used"] > 1 and data["failures"]
    assert (out / "export.json").read_text() == before  # the passed export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]
    # a looser tolerance accepts the same difference (the figures decide, nothing else)
    assert export_run(runs["digits"], "pt2", out=out, rtol=0.05, atol=1e-3).parity.passed


def test_cli_exports_and_exits_2_with_one_line_on_parity_failure(runs, tmp_path, monkeypatch):
    ok = cli("export", str(runs["digits"]), "--format", "pt2", "--out", str(tmp_path / "a"),
             "--json")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout.strip().splitlines()[-1])
    for key in ("out", "format", "max_abs_diff", "max_rel_diff", "accuracy_torch",
                "accuracy_export", "parity"):  # fmt: skip
        assert key in data
    human = cli("export", str(runs["digits"]), "--format", "pt2", "--out", str(tmp_path / "a"))
    assert human.returncode == 0 and "max abs diff" in human.stdout and "passed" in human.stdout
    monkeypatch.setattr(export_formats, "runner", _perturbed(0.5))
    bad = cli("export", str(runs["digits"]), "--format", "pt2", "--out", str(tmp_path / "b"),
              "--json")  # fmt: skip
    assert bad.returncode == 2 and not (tmp_path / "b").exists()
    assert json.loads(bad.stdout.strip().splitlines()[-1])["parity"] is False
    errors = [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "parity check failed" in errors[0]
    assert "Traceback" not in bad.stderr


def test_bad_runs_formats_tolerances_and_folders_are_refused(runs, tmp_path, monkeypatch):
    with pytest.raises(RunError, match="not found"):
        export_run(tmp_path / "missing", "pt2")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["digits"], unfinished, ignore=shutil.ignore_patterns("export"))
    record = json.loads((unfinished / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    with pytest.raises(RunError, match="interrupted, not finished.*trainlab train"):
        export_run(unfinished, "pt2", out=tmp_path / "u")
    with pytest.raises(RecipeError, match="unknown export format 'tflite'.*pt2, onnx"):
        export_run(runs["digits"], "tflite")
    with pytest.raises(RecipeError, match="--rtol must be a number >= 0"):
        export_run(runs["digits"], "pt2", rtol=-1)
    other = tmp_path / "other"
    export_run(runs["binary"], "pt2", out=other)
    with pytest.raises(RunError, match="holds the export of another run"):
        export_run(runs["digits"], "pt2", out=other)
    assert json.loads((other / "export.json").read_text())["source_run"].endswith("bc")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(RunError, match="not a trainlab export"):
        export_run(runs["digits"], "pt2", out=tmp_path / "mine")
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "onnxruntime" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(RecipeError, match=r"onnxruntime.*pip install 'trainlab\[onnx\]'"):
        export_run(runs["digits"], "onnx")
    for args in (["export", str(tmp_path / "missing")], ["export", str(runs["digits"]),
                 "--format", "tflite"]):  # fmt: skip
        result = cli(*args)
        assert result.returncode == 2 and result.stderr.count("error:") == 1
