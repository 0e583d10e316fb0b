"""Reusable layers: mixture of experts, attention pooling, global average pooling."""

from __future__ import annotations

import pytest
import torch

from trainlab.models import AttentionPooling, GlobalAvgPool, MixtureOfExperts
from trainlab.models.layers import load_balancing_loss


def test_moe_gates_sum_to_one_over_exactly_top_k_experts():
    torch.manual_seed(0)
    moe = MixtureOfExperts(10, 6, experts=5, top_k=2)
    gates, probs, top_idx = moe.gates(torch.randn(64, 10))
    assert torch.allclose(gates.sum(1), torch.ones(64), atol=1e-6)
    assert torch.all((gates > 0).sum(1) == 2)
    assert torch.equal(gates.argmax(1), probs.argmax(1))  # the best expert gets the largest gate


def test_moe_output_equals_sparse_dispatch_to_selected_experts():
    torch.manual_seed(0)
    moe = MixtureOfExperts(8, 3, experts=4, top_k=2, hidden=5).eval()
    x = torch.randn(10, 8)
    gates, _, _ = moe.gates(x)
    expected = torch.zeros(10, 3)
    for n in range(10):
        for e in gates[n].nonzero().flatten().tolist():
            h = torch.relu(moe.w1[e] @ x[n] + moe.b1[e])
            expected[n] += gates[n, e] * (moe.w2[e] @ h + moe.b2[e])
    assert torch.allclose(moe(x), expected, atol=1e-5)


def test_load_balancing_loss_is_smallest_for_uniform_routing():
    n, experts = 40, 4
    uniform = load_balancing_loss(
        torch.full((n, experts), 0.25), torch.arange(n).remainder(experts).view(n, 1)
    )
    assert uniform.item() == pytest.approx(1.0)
    collapsed_probs = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(n, 1)
    collapsed = load_balancing_loss(collapsed_probs, torch.zeros(n, 1, dtype=torch.long))
    assert collapsed.item() == pytest.approx(4 * 0.97)
    half = torch.tensor([[0.49, 0.49, 0.01, 0.01]]).repeat(n, 1)
    skewed = load_balancing_loss(half, torch.arange(n).remainder(2).view(n, 1))
    assert uniform < skewed < collapsed
    torch.manual_seed(0)  # any routing a real router produces costs at least the uniform one
    moe = MixtureOfExperts(6, 2, experts=4, top_k=1)
    _, probs, idx = moe.gates(torch.randn(256, 6) * 3)
    assert load_balancing_loss(probs, idx).item() >= 1.0 - 1e-6


def test_moe_auxiliary_loss_reaches_the_router_gradient_only_in_training():
    torch.manual_seed(0)
    moe = MixtureOfExperts(6, 3, experts=4, top_k=2, aux_weight=0.5)
    x = torch.randn(32, 6)
    (moe(x) * 0).sum().backward()  # the task loss contributes nothing
    grad = moe.router.weight.grad.clone()
    moe.zero_grad()
    _, probs, idx = moe.gates(x)
    (0.5 * load_balancing_loss(probs, idx)).backward()
    assert grad.abs().sum() > 0
    assert torch.allclose(grad, moe.router.weight.grad, atol=1e-6)
    assert moe.aux_loss.item() >= 1.0
    moe.zero_grad()
    moe.eval()
    (moe(x) * 0).sum().backward()
    assert moe.router.weight.grad.abs().sum() == 0


def test_moe_rejects_top_k_larger_than_experts():
    with pytest.raises(ValueError, match="top_k"):
        MixtureOfExperts(4, 4, experts=2, top_k=3)


def test_attention_pooling_ignores_masked_positions():
    torch.manual_seed(0)
    pool = AttentionPooling(8)
    x = torch.randn(3, 6, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]]).bool()
    out = pool(x, mask)
    weights = pool.last_weights
    assert torch.allclose(weights.sum(1), torch.ones(3))
    assert torch.all(weights[~mask] == 0)
    assert torch.allclose(out[2], x[2, 0])  # one real token: its state is the summary
    x2 = x.clone()
    x2[~mask] = 100.0  # garbage at padded positions changes nothing
    assert torch.allclose(pool(x2, mask), out)
    assert torch.allclose(out[0], (weights[0, :3, None] * x[0, :3]).sum(0), atol=1e-6)


def test_global_avg_pool_is_the_spatial_mean():
    x = torch.randn(2, 5, 4, 3)
    assert torch.allclose(GlobalAvgPool()(x), x.mean((2, 3)))
