"""Resume: a run killed at any moment ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import trainlab
from trainlab.engine import Technique

from ..conftest import EXAMPLES, cli_process


def _weights_equal(a: Path, b: Path) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _strip_times(history):
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in history]


class CrashAt(Technique):
    """Simulates a crash (an exception escaping the fit) in the middle of an epoch."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state):
        if state.epoch == self.epoch and state.batch_index == self.batch:
            raise KeyboardInterrupt


def test_crash_mid_epoch_then_resume_matches_uninterrupted(digits_recipe, tmp_path):
    digits_recipe["model"]["norm"] = "batch"
    digits_recipe["train"]["schedule"] = {"name": "cosine"}
    digits_recipe["train"]["epochs"] = 4
    full = trainlab.train(digits_recipe, out=tmp_path / "full")
    out = tmp_path / "crashed"
    try:
        trainlab.train(digits_recipe, out=out, extra_techniques=[CrashAt(2, 7)])
    except KeyboardInterrupt:
        pass
    status = json.loads((out / "run.json").read_text())["status"]
    assert status == "interrupted"  # the interrupt is recorded; the run still resumes
    resumed = trainlab.train(digits_recipe, out=out)
    assert resumed.info["resumed_from_epoch"] == 2
    assert resumed.metrics == full.metrics
    assert _strip_times(resumed.history) == _strip_times(full.history)
    assert _weights_equal(out, full.run_dir)


def test_finished_run_is_returned_not_retrained(digits_recipe, tmp_path):
    first = trainlab.train(digits_recipe, out=tmp_path / "r")
    mtime = (tmp_path / "r" / "model.safetensors").stat().st_mtime_ns
    again = trainlab.train(digits_recipe, out=tmp_path / "r")
    assert again.metrics == first.metrics
    assert (tmp_path / "r" / "model.safetensors").stat().st_mtime_ns == mtime


def test_resuming_with_a_different_recipe_is_refused(digits_recipe, tmp_path):
    trainlab.train(digits_recipe, out=tmp_path / "r")
    import pytest

    with pytest.raises(trainlab.RunError, match="different recipe"):
        trainlab.train(digits_recipe, ["train.lr=0.5"], out=tmp_path / "r")


def test_sigkill_at_any_moment_then_resume_gives_identical_run(tmp_path):
    recipe = EXAMPLES / "mnist_mlp_dropout.yaml"
    sets = ["--set", "train.epochs=4", "--set", "train.threads=1"]
    full = tmp_path / "full"
    assert cli_process("train", str(recipe), "--out", str(full), *sets, "--quiet").wait() == 0
    for wait_for in ("epoch-0001", "epoch-0003"):
        out = tmp_path / f"killed-{wait_for}"
        proc = cli_process("train", str(recipe), "--out", str(out), *sets, "--quiet")
        latest = out / "checkpoints" / "latest"
        deadline = time.time() + 120
        while time.time() < deadline:
            if latest.is_file() and latest.read_text().strip() >= wait_for:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        status = json.loads((out / "run.json").read_text())["status"]
        assert status == "running", "the kill should land before the run finished"
        resumed = cli_process("train", str(recipe), "--out", str(out), *sets, "--quiet", "--json")
        stdout, stderr = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, stderr.decode()
        result = json.loads(stdout.decode().strip().splitlines()[-1])
        expected = json.loads((full / "metrics.json").read_text())
        assert result["metrics"] == expected
        assert _weights_equal(out, full)
