"""Data-parallel training on the CPU (gloo, 2 processes): the same numbers as one process,
kill and resume, failures that end every process, what is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab import distributed, threads
from trainlab.errors import RecipeError, RunError

ROOT = Path(__file__).resolve().parents[2]
TRAINLAB = [sys.executable, "-m", "trainlab"]
PLAIN = """
name: ddp
data: {dataset: digits, preprocessing: {scale: minmax}}
model: {name: mlp, hidden: [32], dropout: 0}
train: {epochs: 3, batch_size: 64, lr: 0.1, optimizer: sgd, threads: 1, baselines: none}
"""
#: techniques that must behave as in one process: averaging, clipping on the reduced
#: gradients, accumulation, early stopping decided on the gathered validation metrics
TECHNIQUES = PLAIN.replace("epochs: 3", "epochs: 6") + """
techniques:
  - {name: ema, decay: 0.9}
  - {name: clip_norm, max_norm: 0.5}
  - {name: grad_accumulation, steps: 2}
  - {name: early_stopping, patience: 2, monitor: val_loss}
"""


def _recipe(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _train(recipe: Path, out: Path, *extra: str, timeout: int = 240) -> dict:
    done = subprocess.run([*TRAINLAB, "train", str(recipe), "--out", str(out), "--json", *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


#: 6 epochs of 45 steps: long enough to kill a run mid-way, short enough for the suite
LONGER = PLAIN.replace("epochs: 3", "epochs: 6").replace("batch_size: 64", "batch_size: 32")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(recipe, run directory, --json summary) of an uninterrupted 2-process run."""
    tmp = tmp_path_factory.mktemp("ddp")
    recipe = _recipe(tmp, LONGER)
    return recipe, tmp / "two", _train(recipe, tmp / "two", "--nproc", "2")


def test_two_processes_match_one_process_weights_and_metrics(tmp_path, two_process_run):
    recipe, two_dir, two = two_process_run
    one = _train(recipe, tmp_path / "one")
    a, b = _weights(tmp_path / "one"), _weights(two_dir)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    for key, value in one["metrics"].items():  # whole splits, counted once
        assert two["metrics"][key] == pytest.approx(value, abs=1e-6), key
    info = json.loads((two_dir / "run.json").read_text())
    assert info["processes"] == 2 and info["status"] == "completed"


@pytest.mark.slow
def test_techniques_run_distributed_as_in_one_process(tmp_path):
    recipe = _recipe(tmp_path, TECHNIQUES)
    one = _train(recipe, tmp_path / "one")
    two = _train(recipe, tmp_path / "two", "--nproc", "2")
    assert two["epochs"] == one["epochs"]  # early stopping decided alike
    for key, value in one["metrics"].items():
        assert two["metrics"][key] == pytest.approx(value, abs=1e-5), key


def _epochs_done(run: Path) -> int:
    try:
        return json.loads((run / "run.json").read_text()).get("epochs_completed", 0)
    except (OSError, ValueError):
        return 0


def test_a_killed_two_process_run_resumes_bit_identical(tmp_path, two_process_run):
    recipe, full_dir, _ = two_process_run
    killed = tmp_path / "killed"
    cmd = [*TRAINLAB, "train", str(recipe), "--out", str(killed), "--nproc", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 180
    while _epochs_done(killed) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both processes, mid-epoch
    proc.wait(timeout=30)
    assert 2 <= _epochs_done(killed) < 6, "the run was not killed mid-way"
    _train(recipe, killed, "--nproc", "2")
    full, resumed = _weights(full_dir), _weights(killed)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert json.loads((killed / "metrics.json").read_text()) == json.loads(
        (full_dir / "metrics.json").read_text()
    )


def test_a_failing_rank_ends_every_process(tmp_path):
    recipe = _recipe(tmp_path, PLAIN.replace("epochs: 3", "epochs: 30"))
    started = time.monotonic()
    with pytest.raises(RunError, match="process 1 of the 2 failed"):
        distributed.launch([str(recipe), str(tmp_path / "crash")], nproc=2,
                           module="tests.distributed.crashing_rank")  # fmt: skip
    assert time.monotonic() - started < 120  # ended, not hung in a collective
    assert threads.CAP_VARIABLE not in os.environ  # the launcher's share was the children's
    leftover = subprocess.run(["pgrep", "-f", "tests.distributed.crashing_rank"],
                              capture_output=True, text=True)  # fmt: skip
    assert leftover.stdout.strip() == ""


def test_what_cannot_run_distributed_is_refused_before_starting(tmp_path):
    sam = PLAIN + "techniques:\n  - {name: sam}\n"
    done = subprocess.run([*TRAINLAB, "train", str(_recipe(tmp_path, sam)), "--nproc", "2",
                           "--out", str(tmp_path / "sam")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2 and "techniques.sam: cannot run distributed" in done.stderr
    assert not (tmp_path / "sam").exists()
    with pytest.raises(RunError, match="CPU core"):
        distributed.check_process_count(10_000, "cpu")
    with pytest.raises(RecipeError, match="cannot run distributed"):
        distributed.check_recipe(trainlab.load_recipe(_recipe(tmp_path, sam)))


def test_a_run_resumes_only_with_the_process_count_it_started_with(tmp_path):
    run = trainlab.train(_recipe(tmp_path, PLAIN), out=tmp_path / "r")
    info = json.loads((run.run_dir / "run.json").read_text())
    info.update(status="interrupted", processes=2)
    (run.run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match="started with 2 process.*resume it with --nproc 2"):
        trainlab.train(_recipe(tmp_path, PLAIN), out=tmp_path / "r")
