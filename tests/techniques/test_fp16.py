"""The fp16 + gradient-scaler path of `mixed_precision`, run on CPU float16 autocast.

No GPU is available to this project, and fp16 is refused on CPU for users. These tests
open it on CPU (`FP16_DEVICES`) so that loss scaling, unscaling before the techniques
that read gradients, skipped steps on overflow and the scaler's checkpointed state are
exercised end to end; the CUDA kernels themselves remain untested.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

import trainlab
from trainlab.engine import Technique
from trainlab.techniques import mixed_precision

from .conftest import TEXT, CrashAt
from .test_effects import Probe, recipe, saved

FP16 = {"name": "mixed_precision", "dtype": "fp16"}


@pytest.fixture(autouse=True)
def fp16_on_cpu(monkeypatch):
    monkeypatch.setattr(mixed_precision, "FP16_DEVICES", ("cuda", "cpu"))


def global_grad_norm(state) -> float:
    grads = [p.grad for p in state.model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))


def test_fp16_scales_the_loss_and_trains_to_float32_accuracy(tmp_path):
    fp32 = trainlab.train(recipe(epochs=4), out=tmp_path / "fp32")
    dtypes, scales = [], []
    probes = [
        Probe("after_forward", lambda s: dtypes.append(s.outputs.dtype)),
        Probe("before_step", lambda s: scales.append(s.grad_scaler.get_scale())),
    ]
    fp16 = trainlab.train(recipe(FP16, epochs=4), out=tmp_path / "fp16", extra_techniques=probes)
    assert set(dtypes) == {torch.float16}
    assert min(scales) >= 1024  # the loss really was multiplied before backward
    assert fp16.metrics["test_accuracy"] > 0.9
    assert abs(fp16.metrics["test_accuracy"] - fp32.metrics["test_accuracy"]) < 0.03
    assert all(v.dtype == torch.float32 for v in saved(fp16).values())


class InfAt(Technique):
    """Puts an infinity into the first gradient at optimizer step `step`."""

    order = -500

    def __init__(self, step: int) -> None:
        self.step = step

    def on_after_backward(self, state):
        if state.step == self.step:
            next(state.model.parameters()).grad.view(-1)[0] = math.inf


def test_fp16_overflow_skips_the_step_and_halves_the_scale(tmp_path):
    seen: dict[int, tuple] = {}

    def before(s):
        seen[s.step] = (
            [p.detach().clone() for p in s.model.parameters()],
            s.grad_scaler.get_scale(),
        )

    def after(s):
        weights, scale = seen[s.step - 1]
        seen[s.step - 1] = (
            weights,
            scale,
            [p.detach().clone() for p in s.model.parameters()],
            s.grad_scaler.get_scale(),
        )

    probes = [Probe("before_step", before, order=900), Probe("after_step", after), InfAt(5)]
    run = trainlab.train(recipe(FP16, epochs=1), out=tmp_path / "r", extra_techniques=probes)
    assert run.status == "completed"
    w0, scale0, w1, scale1 = seen[5]
    assert all(torch.equal(a, b) for a, b in zip(w0, w1, strict=True))  # step skipped
    assert scale1 == scale0 / 2
    w0, scale0, w1, scale1 = seen[6]
    assert not all(torch.equal(a, b) for a, b in zip(w0, w1, strict=True))  # next one taken
    assert math.isfinite(run.metrics["val_loss"])


def test_fp16_gradients_are_unscaled_before_clipping(tmp_path):
    norms = []
    probe = Probe("before_step", lambda s: norms.append(global_grad_norm(s)), order=20)
    r = recipe(FP16, {"name": "clip_norm", "max_norm": 0.5}, epochs=1)
    trainlab.train(r, out=tmp_path / "r", extra_techniques=[probe])
    assert norms and max(norms) <= 0.5 + 1e-4  # true gradients, clipped: not scaled ones


def test_fp16_run_resumes_bit_identically_with_its_scaler(tmp_path):
    r = recipe(FP16, {"name": "clip_norm", "max_norm": 1.0}, epochs=3)
    full = trainlab.train(r, out=tmp_path / "full", extra_techniques=[InfAt(30)])
    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(r, out=out, extra_techniques=[InfAt(30), CrashAt(1, 5)])
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    resumed = trainlab.train(r, out=out, extra_techniques=[InfAt(30)])
    assert resumed.info["resumed_from_epoch"] == 1
    assert resumed.metrics == full.metrics
    a, b = saved(full), saved(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fgm_trains_under_fp16(tmp_path):
    r = copy.deepcopy(TEXT)
    r["techniques"] = [FP16, {"name": "fgm", "epsilon": 0.1}]
    r["train"]["epochs"] = 3
    scales = []
    probe = Probe("before_step", lambda s: scales.append(s.grad_scaler.get_scale()))
    run = trainlab.train(r, out=tmp_path / "r", extra_techniques=[probe])
    losses = [row["train_loss"] for row in run.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], losses
    assert min(scales) >= 1024
