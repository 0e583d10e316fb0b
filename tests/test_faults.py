"""Faults from outside: bugs, damaged run files, a full disk, damaged checkpoints.

Each ends in one line on stderr naming the file and the fix, the run is never left
`running`, and nothing already saved is lost: the run resumes once the cause is gone.
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import yaml

import trainlab
from trainlab.engine import checkpoint
from trainlab.engine.checkpoint import CheckpointFallbackWarning
from trainlab.failures import EXIT_INTERNAL_ERROR
from trainlab.store.index import RunIndex

from .conftest import EXAMPLES
from .test_cli import cli


def _one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    text = result.stderr.strip()
    assert "Traceback" not in text
    assert text.startswith("error:") and len(text.splitlines()) == 1, text
    return text


@pytest.fixture
def digits_yaml(tmp_path, digits_recipe):
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(digits_recipe))
    return path


def _status(run_dir) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_a_bug_during_training_is_one_line_a_log_and_a_failed_run(
    digits_yaml, tmp_path, monkeypatch
):
    def broken_fit(self):
        raise ValueError("expected non-negative integer")

    monkeypatch.setattr("trainlab.runs.Engine.fit", broken_fit)
    out = tmp_path / "run"
    text = _one_line_error(cli("train", str(digits_yaml), "--out", str(out)), EXIT_INTERNAL_ERROR)
    assert "internal error in training: ValueError: expected non-negative integer" in text
    assert f"details in {out / 'error.log'}" in text
    log = (out / "error.log").read_text()
    assert "Traceback" in log and "broken_fit" in log
    record = _status(out)
    assert record["status"] == "failed"
    assert record["failure"] == {
        "step": "training",
        "error": "ValueError: expected non-negative integer",
        "internal": True,
    }
    (row,) = RunIndex().list()
    assert row["status"] == "failed"
    monkeypatch.undo()  # the cause is fixed: the same command trains the run to the end
    result = cli("train", str(digits_yaml), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert _status(out)["status"] == "completed"


def test_negative_seed_is_refused_before_anything_is_written(digits_yaml, tmp_path):
    out = tmp_path / "run"
    text = _one_line_error(
        cli("train", str(digits_yaml), "--set", "train.seed=-1", "--out", str(out))
    )
    assert "train.seed" in text and "greater than or equal to 0" in text
    assert not out.exists()


def _crash_after_epochs(recipe, out, epochs: int) -> None:
    """A run interrupted after `epochs` whole epochs (their checkpoints written)."""
    from tests.techniques.conftest import CrashAt

    with pytest.raises(KeyboardInterrupt):
        trainlab.train(recipe, out=out, extra_techniques=[CrashAt(epochs, 0)])
    assert _status(out)["status"] == "interrupted"


def test_random_bytes_in_the_latest_pointer_resume_from_the_newest_whole_checkpoint(
    digits_recipe, tmp_path
):
    reference = trainlab.train(digits_recipe, out=tmp_path / "reference")
    out = tmp_path / "run"
    _crash_after_epochs(digits_recipe, out, 2)
    (out / "checkpoints" / "latest").write_bytes(os.urandom(64) + b"\xff\xfe")
    resumed = trainlab.train(digits_recipe, out=out)
    assert resumed.info["resumed_from_epoch"] == 2
    assert resumed.metrics == reference.metrics


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(digits_recipe, tmp_path):
    reference = trainlab.train(digits_recipe, out=tmp_path / "reference")
    out = tmp_path / "run"
    _crash_after_epochs(digits_recipe, out, 2)
    assert sorted(p.name for p in (out / "checkpoints").glob("epoch-*")) == [
        "epoch-0001",
        "epoch-0002",
    ]
    (out / "checkpoints" / "epoch-0002" / "state.pt").write_bytes(b"not a checkpoint" * 10)
    with pytest.warns(CheckpointFallbackWarning, match="resumed from epoch-0001"):
        resumed = trainlab.train(digits_recipe, out=out)
    assert resumed.info["resumed_from_epoch"] == 1
    assert resumed.metrics == reference.metrics  # resuming earlier loses no correctness


def test_no_readable_checkpoint_is_one_line_that_never_advises_unpickling(
    digits_recipe, digits_yaml, tmp_path
):
    out = tmp_path / "run"
    _crash_after_epochs(digits_recipe | {"name": "digits"}, out, 2)
    for state in (out / "checkpoints").glob("epoch-*/state.pt"):
        state.write_bytes(os.urandom(256))
    text = _one_line_error(cli("train", str(digits_yaml), "--out", str(out)))
    assert (
        "no checkpoint" in text and "can be read" in text and "to train from the beginning" in text
    )
    assert "weights_only" not in text
    assert _status(out)["status"] == "failed"


@pytest.fixture
def finished(digits_yaml, tmp_path):
    out = tmp_path / "finished"
    assert cli("train", str(digits_yaml), "--out", str(out)).returncode == 0
    return out


def test_history_cut_short_is_one_line_naming_the_file_and_the_fix(finished):
    history = finished / "history.jsonl"
    history.write_text(history.read_text()[:-25])
    text = _one_line_error(cli("evaluate", str(finished)))
    assert "history.jsonl' is corrupt at line 3" in text and "delete the file" in text
    history.unlink()  # the fix the message gives
    assert cli("evaluate", str(finished)).returncode == 0


def test_broken_recipe_yaml_is_one_line_naming_the_file(finished):
    (finished / "recipe.yaml").write_text("data: {dataset: digits\nmodel: [")
    text = _one_line_error(cli("evaluate", str(finished)))
    assert "recipe.yaml' is damaged (not valid YAML at line" in text and "restore" in text


@pytest.mark.parametrize("name", ["run.json", "metrics.json"])
def test_random_bytes_in_a_run_file_are_one_line(finished, name):
    (finished / name).write_bytes(os.urandom(100) + b"\xff")
    text = _one_line_error(cli("evaluate", str(finished)))
    assert f"{name}' is corrupt" in text


def test_disk_full_while_checkpointing_keeps_the_last_checkpoint_and_says_how_to_resume(
    digits_yaml, tmp_path, monkeypatch
):
    real_save = checkpoint.save_model
    calls = []

    def save_until_full(model, path):
        calls.append(path)
        if len(calls) == 2:  # the second epoch's checkpoint: the disk fills mid-write
            with open(path, "wb") as f:
                f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(model, path)

    monkeypatch.setattr(checkpoint, "save_model", save_until_full)
    out = tmp_path / "run"
    text = _one_line_error(cli("train", str(digits_yaml), "--out", str(out)))
    assert "cannot write checkpoint epoch-0002" in text and "No space left on device" in text
    assert "checkpoint epoch-0001 is intact" in text and "to resume from it" in text
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch-0001", "latest"]
    assert _status(out)["status"] == "failed"
    monkeypatch.undo()
    result = cli("train", str(digits_yaml), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert _status(out)["resumed_from_epoch"] == 1 and _status(out)["status"] == "completed"


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist") / "run"
    trainlab.train(
        EXAMPLES / "mnist_mlp_dropout.yaml",
        {"train.epochs": 1, "train.threads": 1},
        out=out,
        store=f"sqlite:///{out.parent / 'index.db'}",
    )
    return out


def test_predict_takes_mnist_images_as_every_mnist_user_has_them(mnist_run, tmp_path):
    from trainlab.data.datasets import load_mnist

    images = load_mnist(None).X[:5]  # (5, 1, 28, 28)
    model = trainlab.load(mnist_run)
    expected = model.predict(images)
    for layout in (images[:, 0], images.reshape(5, 784)):  # (N, H, W) and flat rows
        np.save(tmp_path / "x.npy", layout)
        result = cli("predict", str(mnist_run), str(tmp_path / "x.npy"), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1])["indices"] == list(expected)
    assert model.predict(images[0, 0]).tolist() == [expected[0]]  # one (28, 28) image


def test_predict_with_a_real_mismatch_describes_the_layouts_accepted(mnist_run, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 32, 32), np.float32))
    text = _one_line_error(cli("predict", str(mnist_run), str(tmp_path / "x.npy")))
    assert "shape (5, 32, 32)" in text
    assert "(N, 1, 28, 28)" in text and "(N, 28, 28)" in text and "(28, 28)" in text


def test_sigterm_marks_the_run_interrupted_and_it_resumes(tmp_path):
    import signal
    import time

    from .conftest import cli_process

    recipe = EXAMPLES / "mnist_mlp_dropout.yaml"
    sets = ["--set", "train.epochs=3", "--set", "train.threads=1", "--quiet"]
    out = tmp_path / "run"
    proc = cli_process("train", str(recipe), "--out", str(out), *sets)
    latest, deadline = out / "checkpoints" / "latest", time.time() + 120
    while not latest.is_file() and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
    assert _status(out)["status"] == "interrupted"
    resumed = cli_process("train", str(recipe), "--out", str(out), *sets)
    assert resumed.wait(timeout=300) == 0
    assert _status(out)["status"] == "completed" and _status(out)["resumed_from_epoch"] >= 1


@pytest.mark.parametrize(
    ("args", "kind", "code"),
    [
        (["--set", "train.lr=true"], "recipe", 2),
        (["--set", "data.dataset={name: csv, path: nowhere.csv, target: y}"], "data", 2),
    ],
)
def test_with_json_an_error_is_also_the_last_line_of_stdout(
    digits_yaml, tmp_path, args, kind, code
):
    result = cli("train", str(digits_yaml), "--out", str(tmp_path / "run"), "--json", *args)
    text = _one_line_error(result, code)
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last == {"error": text.removeprefix("error:").strip(), "kind": kind}


def test_a_misspelt_target_or_dropped_column_gets_a_did_you_mean(tmp_path):
    csv = EXAMPLES / "data" / "census_sample.csv"
    for key, value, wrong, hint in (
        ("target", "Income", "target column 'Income'", "income"),
        ("drop", "[fnlwgtt]", "drop names column 'fnlwgtt'", "fnlwgt"),
    ):
        path = tmp_path / f"{key}.yaml"
        dataset = {"name": "csv", "path": str(csv), "target": "income", key: yaml.safe_load(value)}
        path.write_text(yaml.safe_dump({"data": {"dataset": dataset}, "model": "mlp"}))
        text = _one_line_error(cli("train", str(path), "--out", str(tmp_path / key)))
        assert wrong in text
        assert f"did you mean '{hint}'?" in text
        assert not (tmp_path / key).exists()  # a failed start leaves no run directory
