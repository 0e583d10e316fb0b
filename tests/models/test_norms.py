"""Normalization layers: batch renorm against batch norm and its formula, resumable schedule."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import trainlab
from trainlab.engine import Technique
from trainlab.engine.checkpoint import load_weights, save_weights
from trainlab.models import BatchRenorm, NormSpec, make_norm


def _pair(r_max: float, d_max: float, **kw) -> tuple[nn.Module, BatchRenorm]:
    bn = nn.BatchNorm2d(6, momentum=0.2)
    br = BatchRenorm(6, momentum=0.2, r_max=r_max, d_max=d_max, warmup_steps=0, ramp_steps=0, **kw)
    with torch.no_grad():
        for m in (bn, br):
            m.weight.copy_(torch.linspace(0.5, 1.5, 6))
            m.bias.copy_(torch.linspace(-1, 1, 6))
    return bn, br


def test_batch_renorm_with_r_max_1_d_max_0_equals_batch_norm():
    torch.manual_seed(0)
    bn, br = _pair(1.0, 0.0)
    for step in range(5):
        x = torch.randn(8, 6, 5, 5) * (step + 1) + step  # batch statistics drift each step
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = bn(xa), br(xb)
        assert torch.allclose(ya, yb, atol=1e-5)
        (ya * torch.arange(6.0).view(1, 6, 1, 1)).sum().backward()
        (yb * torch.arange(6.0).view(1, 6, 1, 1)).sum().backward()
        assert torch.allclose(xa.grad, xb.grad, atol=1e-5)
        assert torch.allclose(bn.weight.grad, br.weight.grad, atol=1e-4)
    assert torch.allclose(bn.running_mean, br.running_mean, atol=1e-5)
    assert torch.allclose(bn.running_var, br.running_var, atol=1e-5)
    bn.eval(), br.eval()
    x = torch.randn(4, 6, 5, 5)
    assert torch.allclose(bn(x), br(x), atol=1e-5)


def test_batch_renorm_corrects_towards_running_statistics():
    """Training output = ((x-μB)/σB·r + d)·γ + β, r and d clipped, no gradient through them."""
    torch.manual_seed(0)
    _, br = _pair(2.0, 0.5)
    with torch.no_grad():
        br.running_mean.fill_(3.0)
        br.running_var.fill_(4.0)
    x = torch.randn(32, 6) * 0.5  # batch σ≈0.5 vs running σ=2 → r and d both clipped
    y = br(x)
    mu, var = x.mean(0), x.var(0, unbiased=False)
    sigma_b = torch.sqrt(var + br.eps)
    r = (sigma_b / torch.sqrt(torch.tensor(4.0) + br.eps)).clamp(0.5, 2.0)
    d = ((mu - 3.0) / torch.sqrt(torch.tensor(4.0) + br.eps)).clamp(-0.5, 0.5)
    expected = ((x - mu) / sigma_b * r + d) * br.weight + br.bias
    assert torch.allclose(y, expected, atol=1e-5)
    assert torch.all(r == 0.5) and torch.all(d == -0.5)  # both limits were active
    bn = nn.BatchNorm1d(6)
    assert not torch.allclose(y, bn(x) * br.weight + br.bias, atol=1e-2)


def test_batch_renorm_warmup_schedule_lives_in_buffers_and_resumes(tmp_path):
    br = BatchRenorm(3, r_max=3.0, d_max=5.0, warmup_steps=10, ramp_steps=20)
    assert br.limits() == (1.0, 0.0)
    for _ in range(20):
        br(torch.randn(4, 3))
    assert br.limits() == pytest.approx((2.0, 2.5))  # halfway through the ramp
    save_weights(nn.Sequential(br), tmp_path / "w.safetensors")
    fresh = nn.Sequential(BatchRenorm(3, r_max=3.0, d_max=5.0, warmup_steps=10, ramp_steps=20))
    load_weights(fresh, tmp_path / "w.safetensors")
    assert fresh[0].limits() == pytest.approx((2.0, 2.5))
    assert torch.equal(fresh[0].running_mean, br.running_mean)
    for _ in range(40):
        fresh[0](torch.randn(4, 3))
    assert fresh[0].limits() == (3.0, 5.0)
    br.eval()
    br(torch.randn(4, 3))  # evaluation does not advance the schedule
    assert int(br.num_batches_tracked) == 20


@pytest.mark.parametrize(
    ("name", "spatial", "cls"),
    [
        ("batch", True, nn.BatchNorm2d),
        ("batch", False, nn.BatchNorm1d),
        ("batch_renorm", True, BatchRenorm),
        ("layer", False, nn.LayerNorm),
        ("layer", True, nn.GroupNorm),
        ("group", True, nn.GroupNorm),
    ],
)
def test_make_norm_builds_the_named_layer(name, spatial, cls):
    layer = make_norm(name, 12, spatial)
    assert isinstance(layer, cls)
    shape = (4, 12, 5, 5) if spatial else (4, 12)
    assert layer(torch.randn(shape)).shape == shape


def test_group_and_layer_norm_normalize_each_sample():
    x = torch.randn(2, 12, 4, 4) * 5 + 3
    y = make_norm(NormSpec(name="group", groups=4), 12, spatial=True)(x)
    groups = y.view(2, 4, -1)
    assert torch.allclose(groups.mean(-1), torch.zeros(2, 4), atol=1e-5)
    assert make_norm("group", 12, True).num_groups == 4  # 8 reduced to a divisor of 12
    y = make_norm("layer", 12, spatial=True)(x)
    assert torch.allclose(y.view(2, -1).mean(1), torch.zeros(2), atol=1e-5)


def test_local_response_norm_divides_by_neighbour_energy():
    spec = NormSpec(name="lrn", size=3, alpha=3.0, beta=1.0, k=1.0)
    x = torch.zeros(1, 5, 1, 1)
    x[0, 2] = 2.0
    y = make_norm(spec, 5, spatial=True)(x)
    # channel 2: 2 / (k + alpha/size · (2²)) = 2 / 5
    assert y[0, 2, 0, 0].item() == pytest.approx(0.4)
    dense = make_norm(spec, 5, spatial=False)(x.view(1, 5))
    assert torch.allclose(dense, y.view(1, 5))
    assert make_norm("none", 5, True) is None


class _CrashAt(Technique):
    """Simulates a crash in the middle of epoch `epoch`."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state) -> None:
        if state.epoch == self.epoch and state.batch_index == self.batch:
            raise KeyboardInterrupt


def test_batch_renorm_run_resumes_exactly_after_a_crash(digits_recipe, tmp_path):
    """The r_max/d_max ramp is mid-way when the crash hits; the resumed run must match."""
    digits_recipe["model"]["norm"] = {"name": "batch_renorm", "warmup_steps": 20, "ramp_steps": 60}
    digits_recipe["model"]["init"] = "keras"  # also exercises the BN warm-start hook
    full = trainlab.train(digits_recipe, out=tmp_path / "full")
    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(digits_recipe, out=out, extra_techniques=[_CrashAt(1, 5)])
    resumed = trainlab.train(digits_recipe, out=out)
    assert resumed.info["resumed_from_epoch"] == 1
    assert resumed.metrics == full.metrics
    a, b = load_file(out / "model.safetensors"), load_file(full.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["2.num_batches_tracked"]) == full.history[-1]["step"]  # every training batch
