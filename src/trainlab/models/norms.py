"""Normalization layers a recipe may name (`norm: batch` or `{name: batch_renorm, ...}`).

- `batch`: batch normalization (Ioffe & Szegedy 2015) — faster, more stable training.
- `batch_renorm`: batch renormalization (Ioffe 2017) — batch norm whose training output is
  corrected towards the running statistics, so small or non-i.i.d. batches behave like
  inference; no library ships it, so it is implemented here.
- `layer`: layer normalization — per-sample, independent of batch size (RNNs, tiny batches).
- `group`: group normalization — per-sample over channel groups (small-batch vision).
- `lrn`: local response normalization (AlexNet) — lateral inhibition across channels.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from trainlab.params import StrictModel

NORMS = ("none", "batch", "batch_renorm", "layer", "group", "lrn")


class NormSpec(StrictModel):
    """A normalization layer and its options; a bare name (`batch`) is the short form.

    Args:
        momentum: running-statistics momentum in torch terms (weight of the new batch);
            Keras' momentum m is 1 - m here.
        groups: channel groups of `group` (reduced to a divisor of the channel count).
        r_max / d_max: batch-renorm clipping limits reached after the warm-up.
        warmup_steps: batch-renorm steps at r_max=1, d_max=0 (plain batch norm) before the
            limits start to relax; ramp_steps: steps over which they relax linearly.
        size / alpha / beta / k: local response normalization (AlexNet: 5, 1e-4, 0.75, 2).
    """

    name: Literal["none", "batch", "batch_renorm", "layer", "group", "lrn"] = "none"
    momentum: float = Field(0.1, gt=0, le=1)
    eps: float = Field(1e-5, gt=0)
    groups: int = Field(8, gt=0)
    r_max: float = Field(3.0, ge=1)
    d_max: float = Field(5.0, ge=0)
    warmup_steps: int = Field(500, ge=0)
    ramp_steps: int = Field(2000, ge=0)
    size: int = Field(5, gt=0)
    alpha: float = Field(1e-4, ge=0)
    beta: float = Field(0.75, ge=0)
    k: float = Field(2.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class BatchRenorm(nn.Module):
    """Batch renormalization (Ioffe 2017) for (N, C) or (N, C, *spatial) inputs.

    Training output: ((x - μ_B) / σ_B · r + d) · γ + β with r = clip(σ_B / σ, 1/r_max, r_max)
    and d = clip((μ_B - μ) / σ, -d_max, d_max) treated as constants, where μ, σ are the
    running statistics. r_max and d_max start at 1 and 0 (plain batch norm) for
    `warmup_steps`, then grow linearly to their final values over `ramp_steps`. The step
    count is a buffer, so the schedule is saved with the weights and resumes exactly.
    Inference is identical to batch norm.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 500,
        ramp_steps: int = 2000,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.r_max_final, self.d_max_final = r_max, d_max
        self.warmup_steps, self.ramp_steps = warmup_steps, ramp_steps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def limits(self) -> tuple[float, float]:
        """The current (r_max, d_max) of the warm-up schedule."""
        steps = int(self.num_batches_tracked) - self.warmup_steps
        if steps < 0:
            t = 0.0
        else:
            t = 1.0 if self.ramp_steps == 0 else min(steps / self.ramp_steps, 1.0)
        return 1.0 + (self.r_max_final - 1.0) * t, self.d_max_final * t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize over the batch (and spatial) dimensions of channel dim 1."""
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if not self.training:
            scale = torch.rsqrt(self.running_var + self.eps)
            x_hat = (x - self.running_mean.view(shape)) * scale.view(shape)
            return x_hat * self.weight.view(shape) + self.bias.view(shape)
        dims = [0, *range(2, x.dim())]
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        std = torch.sqrt(var + self.eps)
        r_max, d_max = self.limits()
        with torch.no_grad():
            running_std = torch.sqrt(self.running_var + self.eps)
            r = (std / running_std).clamp(1.0 / r_max, r_max)
            d = ((mean - self.running_mean) / running_std).clamp(-d_max, d_max)
            n = x.numel() // x.shape[1]
            self.running_mean.add_(self.momentum * (mean - self.running_mean))
            unbiased = var * n / max(n - 1, 1)
            self.running_var.add_(self.momentum * (unbiased - self.running_var))
            self.num_batches_tracked.add_(1)
        x_hat = (x - mean.view(shape)) / std.view(shape) * r.view(shape) + d.view(shape)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"r_max={self.r_max_final}, d_max={self.d_max_final}, "
            f"warmup_steps={self.warmup_steps}, ramp_steps={self.ramp_steps}"
        )


class _ChannelLRN(nn.Module):
    """Local response normalization for (N, C) features (adds the spatial dim LRN needs)."""

    def __init__(self, lrn: nn.LocalResponseNorm) -> None:
        super().__init__()
        self.lrn = lrn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lrn(x.unsqueeze(-1)).squeeze(-1) if x.dim() == 2 else self.lrn(x)


def make_norm(spec: NormSpec | str, num_features: int, spatial: bool) -> nn.Module | None:
    """The normalization layer for `num_features` channels, or None for `none`.

    `spatial` says whether inputs are (N, C, *spatial) (conv) or (N, C) (dense).
    """
    if isinstance(spec, str):
        spec = NormSpec.model_validate(spec)
    if spec.name == "none":
        return None
    if spec.name == "batch":
        cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        return cls(num_features, eps=spec.eps, momentum=spec.momentum)
    if spec.name == "batch_renorm":
        return BatchRenorm(
            num_features,
            spec.eps,
            spec.momentum,
            spec.r_max,
            spec.d_max,
            spec.warmup_steps,
            spec.ramp_steps,
        )
    if spec.name == "layer":
        # over all of (C, H, W) for conv features, as in the layer-norm paper
        return nn.GroupNorm(1, num_features, spec.eps) if spatial else nn.LayerNorm(num_features)
    if spec.name == "group":
        groups = math.gcd(spec.groups, num_features)
        return nn.GroupNorm(groups, num_features, spec.eps)
    lrn = nn.LocalResponseNorm(spec.size, spec.alpha, spec.beta, spec.k)
    return lrn if spatial else _ChannelLRN(lrn)
