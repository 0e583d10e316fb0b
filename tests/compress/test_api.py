"""`trainlab compress` end to end: a source run in, a measured compressed run out, which
every run consumer loads; bad input is refused and the source is never changed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import trainlab
from trainlab.compress.api import compress, parse_chains
from trainlab.compress.methods import MethodOptions
from trainlab.errors import RecipeError, RunError
from trainlab.store.index import RunIndex

MLP = "examples/mnist_mlp_dropout.yaml"


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """The seed MLP trained for 2 epochs (a real run on the shipped MNIST)."""
    root = tmp_path_factory.mktemp("source")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRAINLAB_STORE", f"sqlite:///{root / 'index.db'}")
    try:
        run = trainlab.train(MLP, ["train.epochs=2"], out=root / "mlp")
    finally:
        mp.undo()
    return run.run_dir


def _digest(path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}  # fmt: skip


def test_neurons_then_int8_make_a_run_every_consumer_loads(source_run, tmp_path):
    before = _digest(source_run)
    result = compress(source_run, ["neurons:0.5"], "int8", finetune=1, target_drop=None,
                      out=tmp_path / "small")  # fmt: skip
    data = result.to_dict()
    assert _digest(source_run) == before  # the source run is only read
    assert data["method"] == "neurons:0.5+int8"
    for side in ("before", "after"):
        for key in ("test_accuracy", "val_accuracy", "params", "nonzero_params",
                    "size_bytes", "macs", "latency_ms_b1", "latency_ms_b256"):  # fmt: skip
            assert data[side][key] is not None and data[side][key] >= 0, (side, key)
    assert data["after"]["params"] < 0.6 * data["before"]["params"]
    assert data["after"]["macs"] < 0.6 * data["before"]["macs"]
    assert data["after"]["size_bytes"] < 0.5 * data["before"]["size_bytes"]
    assert data["speedup_b256"] == pytest.approx(
        data["before"]["latency_ms_b256"] / data["after"]["latency_ms_b256"], rel=1e-2
    )
    # the new run is a run: its recipe rebuilds the pruned, quantized model
    predictor = trainlab.load(result.run_dir)
    assert predictor.model[1].out_features == 64
    metrics = predictor.evaluate("test")
    assert metrics["test_accuracy"] == pytest.approx(data["after"]["test_accuracy"], abs=1e-6)
    x = np.random.default_rng(0).integers(0, 255, (3, 28, 28)).astype(np.float32)
    assert predictor.predict(x).shape == (3,)
    saved = json.loads((result.run_dir / "compression.json").read_text())
    assert saved["source"] == str(source_run)
    assert (result.run_dir / "compression.png").stat().st_size > 1000
    rows = RunIndex().list(study=f"compress:{source_run.name}")
    assert [r["run_dir"] for r in rows] == [str(result.run_dir.resolve())]


def test_several_amounts_are_candidates_and_the_fastest_within_target_wins(source_run, tmp_path):
    result = compress(source_run, ["neurons:0.25,0.75"], finetune=1, target_drop=0.5,
                      out=tmp_path / "c")  # fmt: skip
    data = result.to_dict()
    assert [c["method"] for c in data["candidates"]] == ["neurons:0.25", "neurons:0.75"]
    fastest = min(data["candidates"], key=lambda c: c["measurement"]["latency_ms_b256"])
    assert data["method"] == fastest["method"]


def test_an_unmeetable_target_keeps_the_best_and_says_so(source_run, tmp_path):
    result = compress(source_run, ["neurons:0.97"], finetune=0, target_drop=0.0,
                      out=tmp_path / "t")  # fmt: skip
    assert not result.met_target
    assert trainlab.load(result.run_dir).model[1].out_features < 10  # 3 % of 128 kept


@pytest.mark.parametrize(
    ("prune", "quantize", "message"),
    [
        (["magnitud:0.5"], None, "did you mean 'magnitude'"),
        (["magnitude:1.5"], None, "between 0 and 1"),
        (["magnitude"], None, "give an amount"),
        (["threshold:-1"], None, "must be > 0"),
        (["magnitude:0.5", "neurons:0.5"], None, "must come last"),
        (["neurons:0.2,0.4", "magnitude:0.5"], None, "only the last"),
        ([], "int4", "unknown"),
        ([], None, "nothing to do"),
        (["int8:0.5"], None, "--quantize"),
    ],
)
def test_bad_methods_are_refused_before_any_work(prune, quantize, message):
    with pytest.raises(RecipeError, match=message):
        parse_chains(prune, quantize)


def test_bad_sources_and_outputs_are_refused(source_run, tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        compress(tmp_path / "nothing", ["neurons:0.5"])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    info = json.loads((source_run / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**info, "status": "running"}))
    for name in ("recipe.yaml", "data.json", "preprocess.json", "model.safetensors"):
        (unfinished / name).write_bytes((source_run / name).read_bytes())
    with pytest.raises(RunError, match="finished"):
        compress(unfinished, ["neurons:0.5"])
    with pytest.raises(RunError, match="source run"):
        compress(source_run, ["neurons:0.5"], out=source_run)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="not empty"):
        compress(source_run, ["neurons:0.5"], out=full)
    assert (full / "keep.txt").read_text() == "mine"


def test_options_are_checked():
    with pytest.raises(RecipeError, match="global or layer"):
        MethodOptions(scope="everywhere")


def test_the_command_prints_one_json_line_and_a_table(source_run, tmp_path):
    cmd = [sys.executable, "-m", "trainlab.cli", "compress", str(source_run), "--prune",
           "neurons:0.5", "--finetune", "0", "--target-drop", "1", "--out",
           str(tmp_path / "cli"), "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(data) >= {"run_dir", "before", "after", "speedup_b256", "method"}
    assert data["after"]["params"] < data["before"]["params"]


def test_vs_scratch_trains_the_small_architecture_and_states_the_winner(source_run, tmp_path):
    result = compress(source_run, ["neurons:0.5"], finetune=1, target_drop=None,
                      out=tmp_path / "vs", vs_scratch=2)  # fmt: skip
    scratch = result.to_dict()["vs_scratch"]
    assert scratch["seeds"] == 2 and len(scratch["scratch_test"]) == 2
    d = scratch["difference"]
    assert d["ci_low"] <= d["mean"] <= d["ci_high"]
    expected = ("the compressed model wins" if d["ci_low"] > 0 else "training from scratch "
                "wins" if d["ci_high"] < 0 else "no significant difference")  # fmt: skip
    assert scratch["verdict"] == expected
    for seed in range(2):  # each a real run of the pruned architecture, from scratch
        run = trainlab.runs.Run.open(result.run_dir / "scratch" / f"seed-{seed}")
        assert run.recipe.compression.shapes["1.weight"] == [64, 784]
        assert run.recipe.compression.quantize == "none" and run.status == "completed"


def test_magnitude_pruning_is_saved_dense_and_loads_with_its_zeros(source_run, tmp_path):
    result = compress(source_run, ["magnitude:0.8"], finetune=1, target_drop=None,
                      out=tmp_path / "m")  # fmt: skip
    data = result.to_dict()
    after = data["after"]
    assert after["params"] == data["before"]["params"]  # masks change no shape
    assert after["nonzero_params"] < 0.3 * after["params"]
    assert after["sparse_size_bytes"] < 0.5 * after["size_bytes"]
    assert any("faster" in note for note in data["notes"])  # says zeros alone speed nothing
    weight = trainlab.load(result.run_dir).model[1].weight
    assert float((weight == 0).float().mean()) >= 0.79


def test_an_unmeetable_target_exits_non_zero_from_the_command(source_run, tmp_path):
    cmd = [sys.executable, "-m", "trainlab.cli", "compress", str(source_run), "--prune",
           "neurons:0.97", "--finetune", "0", "--target-drop", "0", "--out",
           str(tmp_path / "cli")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 2
    assert "no candidate stayed within --target-drop 0" in proc.stderr
    assert (tmp_path / "cli" / "compression.json").is_file()  # the best found is kept


def test_static_int8_of_a_cnn_loads_back_exactly_from_its_recipe(tmp_path):
    """Static int8 needs its calibration at load: it travels in the run's recipe."""
    src = trainlab.train("examples/mnist_cnn_bn.yaml", ["train.epochs=1"], out=tmp_path / "cnn")
    result = compress(src.run_dir, quantize="int8", target_drop=None, out=tmp_path / "q")
    recipe = trainlab.load_recipe(result.run_dir / "recipe.yaml")
    assert recipe.compression.quantize == "int8" and recipe.compression.calibration
    loaded = trainlab.load(result.run_dir)
    assert any("quantized" in type(m).__module__ for m in loaded.model.modules())
    test = loaded.evaluate("test")["test_accuracy"]
    assert test == pytest.approx(result.to_dict()["after"]["test_accuracy"], abs=1e-6)
    assert abs(test - src.metrics["test_accuracy"]) <= 0.01
