"""`mixup`: train on convex combinations of pairs of samples and of their targets.

Method card
    What: each batch becomes `λ·x + (1−λ)·x[perm]` with targets mixed the same way
    (Zhang et al. 2018), λ ~ Beta(α, α) drawn once per batch and folded to λ ≥ 0.5 so
    each sample stays dominant (α → 0 is the identity).
    When: over-fitting on small image or tabular data; smoother decision boundaries and
    better calibration. Needs more epochs to pay off; hurts very short runs.
    Parameters: `alpha` (default 0.2; 0.1–0.4 typical), `alternate` (take turns with
    `cutmix` batch by batch instead of refusing the combination).
    Conflicts: other target rewriters (`cutmix`) unless both set `alternate: true`.
    Composes with `label_smoothing` (the mixed targets are smoothed).
"""

from __future__ import annotations

import torch
from pydantic import Field

from trainlab.engine.state import State
from trainlab.errors import RecipeError
from trainlab.techniques.registry import TECHNIQUES
from trainlab.techniques.targets import AlternateParams, TargetRewriter, mix_targets, sample_lambda


def mixup_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    perm: torch.Tensor,
    target_kind: str = "multiclass",
    num_classes: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix inputs and targets: (λ·x + (1−λ)·x[perm], λ·y + (1−λ)·y[perm])."""
    x_mixed = lam * x + (1.0 - lam) * x[perm]
    return x_mixed, mix_targets(y, perm, lam, target_kind, num_classes)


class MixupParams(AlternateParams):
    """Parameters of `mixup`."""

    alpha: float = Field(0.2, gt=0)


@TECHNIQUES.register(
    "mixup",
    description="train on convex mixes of sample pairs and their targets; alpha",
    params=MixupParams,
    tasks=("multiclass", "binary"),
    modalities=("image", "tabular"),
    hint="for text use token_dropout or fgm",
)
class Mixup(TargetRewriter):
    """Replaces each training batch by its mixup at BATCH_START."""

    def __init__(self, params: MixupParams) -> None:
        self.params = params
        self.alternate = params.alternate

    def on_batch_start(self, state: State) -> None:
        if not self.my_turn(state):
            return
        kind, n_out = self.task(state, "mixup")
        x, y = state.batch
        if not x.is_floating_point():
            raise RecipeError(
                "techniques.mixup: the inputs are integer ids (text), which cannot be "
                f"mixed; {TECHNIQUES.facts('mixup').hint}"
            )
        lam = sample_lambda(self.params.alpha)
        lam = max(lam, 1.0 - lam)
        perm = torch.randperm(len(y), device=y.device)
        state.batch = mixup_batch(x, y, lam, perm, kind, n_out)
