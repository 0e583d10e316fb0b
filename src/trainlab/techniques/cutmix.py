"""`cutmix`: paste a random box from another image; mix targets by the pasted area.

Method card
    What: for each batch a box covering a fraction 1−λ of the image (λ ~ Beta(α, α)) is
    cut from a shuffled copy of the batch and pasted in; targets are mixed by the exact
    pasted area (Yun et al. 2019).
    When: image classification that over-fits; keeps images natural-looking locally,
    often better than mixup for CNNs. Images only: inputs of shape (N, C, H, W).
    Parameters: `alpha` (default 1.0), `alternate` (take turns with `mixup`).
    Conflicts: other target rewriters (`mixup`) unless both set `alternate: true`.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from trainlab.engine.state import State
from trainlab.errors import RecipeError
from trainlab.techniques.registry import TECHNIQUES
from trainlab.techniques.targets import AlternateParams, TargetRewriter, mix_targets, sample_lambda


def cutmix_box(h: int, w: int, lam: float) -> tuple[int, int, int, int]:
    """A box (top, bottom, left, right) of area ≈ (1−λ)·h·w at a random centre."""
    ratio = math.sqrt(1.0 - lam)
    ch, cw = int(h * ratio), int(w * ratio)
    cy = int(torch.randint(h, (1,)))
    cx = int(torch.randint(w, (1,)))
    top, bottom = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    left, right = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    return top, bottom, left, right


def cutmix_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    box: tuple[int, int, int, int],
    perm: torch.Tensor,
    target_kind: str = "multiclass",
    num_classes: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste `box` of `x[perm]` into `x`; targets mixed by the kept area fraction."""
    top, bottom, left, right = box
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = x[perm][:, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (x.shape[2] * x.shape[3])
    return mixed, mix_targets(y, perm, kept, target_kind, num_classes)


class CutmixParams(AlternateParams):
    """Parameters of `cutmix`."""

    alpha: float = Field(1.0, gt=0)


@TECHNIQUES.register(
    "cutmix",
    description="paste a random box from another image, mix targets by area; alpha (images)",
    params=CutmixParams,
    tasks=("multiclass", "binary"),
    modalities="image",
    hint="use mixup for other data",
)
class Cutmix(TargetRewriter):
    """Replaces each training batch by its cutmix at BATCH_START."""

    def __init__(self, params: CutmixParams) -> None:
        self.params = params
        self.alternate = params.alternate

    def on_batch_start(self, state: State) -> None:
        if not self.my_turn(state):
            return
        x, y = state.batch
        if x.ndim != 4:
            raise RecipeError(
                f"techniques.cutmix: needs image inputs (N, C, H, W), got shape "
                f"{tuple(x.shape)}; {TECHNIQUES.facts('cutmix').hint}"
            )
        kind, n_out = self.task(state, "cutmix")
        lam = sample_lambda(self.params.alpha)
        box = cutmix_box(x.shape[2], x.shape[3], lam)
        perm = torch.randperm(len(y), device=y.device)
        state.batch = cutmix_batch(x, y, box, perm, kind, n_out)
