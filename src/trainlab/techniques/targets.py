"""Shared by the techniques that rewrite targets (mixup, cutmix): soft targets, turns.

Two target-rewriting techniques in one recipe conflict (each would mix the other's
output), unless every one of them sets `alternate: true`: they then take turns, batch
by batch (timm's mixup/cutmix switch). The recipe validator refuses the combination
otherwise (`registry.check_combination`, from each class's `rewrites_targets`), and
`assembly.build_techniques` assigns the turns.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.common import global_batch


def soft_targets(y: torch.Tensor, target_kind: str, num_classes: int) -> torch.Tensor:
    """Targets as floats that can be mixed: one-hot rows for classes, values otherwise."""
    if target_kind == "multiclass" and not y.is_floating_point():
        return F.one_hot(y, num_classes).float()
    return y.float()


def mix_targets(
    y: torch.Tensor, perm: torch.Tensor, lam: float, target_kind: str, num_classes: int
) -> torch.Tensor:
    """`lam · y + (1 − lam) · y[perm]` on soft targets."""
    soft = soft_targets(y, target_kind, num_classes)
    return lam * soft + (1.0 - lam) * soft[perm]


def sample_lambda(alpha: float) -> float:
    """λ ~ Beta(α, α) from torch's global generator (saved with every checkpoint).

    Drawn as X/(X+Y) with X, Y ~ Gamma(α) written as Gamma(α+1)·U^(1/α) in log space,
    so tiny α (λ near 0 or 1) stays exact instead of underflowing to 0/0.
    """
    boosted = torch._standard_gamma(torch.full((2,), float(alpha) + 1.0))
    logs = boosted.log() + torch.rand(2).log() / float(alpha)
    return float(torch.sigmoid(logs[0] - logs[1]))


class AlternateParams(StrictModel):
    """Mixin parameter: take turns with other target-rewriting techniques."""

    alternate: bool = False


class TargetRewriter(Technique):
    """Base of mixup/cutmix: knows the task, and whether this batch is its turn."""

    rewrites_targets = True
    slot, turns = 0, 1

    def take_turns(self, slot: int, turns: int) -> None:
        """Act only on batches where `global batch index % turns == slot`."""
        self.slot, self.turns = slot, turns

    def my_turn(self, state: State) -> bool:
        """Whether this technique rewrites the current batch."""
        return self.turns == 1 or global_batch(state) % self.turns == self.slot

    @staticmethod
    def task(state: State, name: str) -> tuple[str, int]:
        """(target kind, number of outputs) of the task being trained."""
        info = state.task
        if info is None:
            raise RecipeError(f"techniques.{name}: needs the task; set State.task for the fit")
        return info.target_kind, int(info.output_dim)
