"""The CUDA paths, checked where a GPU is (scripts/gpu_check.sh runs them): skipped on
machines without CUDA. Each test trains a small real run on the GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import trainlab

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
ROOT = Path(__file__).resolve().parents[2]
DIGITS = {
    "name": "gpu",
    "data": {"dataset": "digits", "preprocessing": {"scale": "minmax"}},
    "model": {"name": "mlp", "hidden": [64]},
    "train": {"epochs": 5, "batch_size": 64, "lr": 0.01, "device": "cuda", "baselines": "none"},
}
CNN = {
    "name": "gpu_cnn",
    "data": {"dataset": "mnist"},
    "model": {"name": "cnn", "channels": [16, 32], "norm": "batch", "dense": [64]},
    "train": {"epochs": 2, "batch_size": 128, "lr": 0.003, "device": "cuda",
              "optimizer": "adamw", "baselines": "none"},
}  # fmt: skip


def test_a_run_trains_on_the_gpu_and_predicts_there_as_on_the_cpu(tmp_path):
    run = trainlab.train(DIGITS, out=tmp_path / "r")
    assert run.info["environment"]["device"].startswith("cuda")
    assert run.metrics["test_accuracy"] > 0.85
    gpu, cpu = trainlab.load(run.run_dir, device="cuda"), trainlab.load(run.run_dir)
    rows = torch.rand(64, 64).numpy()
    assert (gpu.predict(rows) == cpu.predict(rows)).mean() >= 0.98
    assert gpu.evaluate("test")["test_accuracy"] == pytest.approx(
        run.metrics["test_accuracy"], abs=1e-6
    )


def test_the_data_lives_on_the_gpu_so_batches_need_no_copies(tmp_path):
    from trainlab.prepare import prepare

    prepared = prepare(trainlab.load_recipe(DIGITS), "cuda")
    x, y = next(iter(prepared.batches("train", shuffle=True)))
    assert x.is_cuda and y.is_cuda


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_mixed_precision_trains_on_the_gpu(tmp_path, dtype):
    recipe = {**CNN, "techniques": [{"name": "mixed_precision", "dtype": dtype}]}
    run = trainlab.train(recipe, out=tmp_path / dtype)
    assert run.status == "completed"
    assert run.metrics["test_accuracy"] > 0.9  # fp16 with its GradScaler, bf16 without


def test_channels_last_on_the_gpu(tmp_path):
    recipe = {**CNN, "techniques": [{"name": "channels_last"}]}
    run = trainlab.train(recipe, out=tmp_path / "cl")
    assert run.metrics["test_accuracy"] > 0.9


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl DDP needs two GPUs")
def test_ddp_with_nccl_and_sync_batch_norm(tmp_path):
    path = tmp_path / "cnn.yaml"
    import yaml

    path.write_text(yaml.safe_dump(CNN))
    done = subprocess.run([sys.executable, "-m", "trainlab", "train", str(path), "--nproc", "2",
                           "--out", str(tmp_path / "ddp"), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["metrics"]["test_accuracy"] > 0.9
    info = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert info["processes"] == 2


def test_sync_batch_norm_replaces_batch_norm_in_a_distributed_gpu_fit():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)).cuda()
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(synced[1], torch.nn.SyncBatchNorm)
    assert synced[0].weight is model[0].weight  # the optimizer built after sees the same tensors
