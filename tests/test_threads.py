"""`train.threads: auto`: the cores this process may use, less the busy ones; one thread
for a step too small to split; recorded in run.json and kept on resume."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

import pytest

import trainlab
from trainlab import threads
from trainlab.config import load_recipe
from trainlab.errors import RecipeError


def test_a_number_in_the_recipe_wins():
    choice = threads.choose_threads(3, step_flops=1.0)
    assert choice.threads == 3 and "recipe" in choice.reason


def test_a_small_step_runs_on_one_thread():
    choice = threads.choose_threads("auto", step_flops=threads.MIN_FLOPS_PER_THREAD / 10)
    assert choice.threads == 1 and "too little work" in choice.reason


def test_a_resumed_run_keeps_its_count():
    choice = threads.choose_threads("auto", step_flops=1e12, previous={"threads": 7})
    assert choice.threads == 7 and choice.reason == "as when the run started"


def test_a_workers_share_caps_the_count(monkeypatch):
    monkeypatch.setenv(threads.CAP_VARIABLE, "1")
    monkeypatch.setattr(threads, "available_cores", lambda: (4, "affinity mask"))
    choice = threads.choose_threads("auto", step_flops=1e12)
    assert choice.threads == 1 and choice.cores == 1


def test_busy_cores_are_left_to_their_processes(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: (2, "affinity mask"))
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.9)
    choice = threads.choose_threads("auto", step_flops=1e12)
    assert choice.threads == 1 and "0.9 kept busy" in choice.reason
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.2)
    assert threads.choose_threads("auto", step_flops=1e12).threads == 2


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_busy_cores_sees_another_process():
    if threads.busy_cores(0.05) is None:
        pytest.skip("no /proc/stat here")
    proc = mp.get_context("spawn").Process(target=_spin, args=(3.0,))
    proc.start()
    try:
        time.sleep(0.8)  # the child is up and spinning
        busy = threads.busy_cores(0.5)
    finally:
        proc.terminate()
        proc.join()
    assert busy is not None and busy >= 0.6  # one spinning process ≈ one core


def test_bad_thread_counts_are_refused():
    base = {"data": {"dataset": "iris"}, "model": "mlp"}
    with pytest.raises(RecipeError, match="threads"):
        load_recipe({**base, "train": {"threads": 0}})
    with pytest.raises(RecipeError, match="threads"):
        load_recipe({**base, "train": {"threads": "many"}})


def test_run_json_records_the_choice(tmp_path):
    recipe = {"data": {"dataset": "iris"}, "model": "mlp", "train": {"epochs": 1}}
    run = trainlab.train(recipe, out=tmp_path / "run")
    record = json.loads((run.run_dir / "run.json").read_text())["threads"]
    assert record["threads"] == 1 and record["step_flops"] < threads.MIN_FLOPS_PER_THREAD
    assert record["reason"].startswith("a step is")


def test_a_worker_share_is_undone_after_its_job(monkeypatch):
    import os

    import torch

    monkeypatch.delenv(threads.CAP_VARIABLE, raising=False)
    before = torch.get_num_threads()
    with threads.worker_share(1):
        assert os.environ[threads.CAP_VARIABLE] == "1" and torch.get_num_threads() == 1
    assert threads.CAP_VARIABLE not in os.environ and torch.get_num_threads() == before


def test_image_batches_come_out_channels_last_with_the_same_values():
    import torch

    from trainlab.data.batching import TensorBatches

    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    rgb = torch.randn(3, 3, 4, 4)
    (gray, _), = TensorBatches(x, torch.zeros(2), batch_size=2)
    (color, _), = TensorBatches(rgb, torch.zeros(3), batch_size=3, shuffle=True)
    assert gray.stride() == (16, 1, 4, 1) and torch.equal(gray, x)
    assert color.is_contiguous(memory_format=torch.channels_last)
    assert sorted(color.flatten().tolist()) == sorted(rgb.flatten().tolist())
