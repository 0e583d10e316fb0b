"""The compression methods a `--prune METHOD:AMOUNT` or `--quantize` may name.

Each entry's builder is `build(model, amount, ctx, options) -> MethodResult`
(context.py); `amount` is a fraction in (0, 1) — the sparsity for `magnitude`, the
share of units removed for `neurons`/`channels`/`structured` — or the threshold for
`threshold`, and None for `int8`. The modules that register them are imported by
`catalog.load_methods()`, so importing this module costs no import of Torch-Pruning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args, get_type_hints

from trainlab.errors import RecipeError
from trainlab.registry import Registry

METHODS: Registry = Registry("compression method")


@dataclass(frozen=True)
class MethodOptions:
    """Options shared by the methods (the `trainlab compress` flags).

    Args:
        finetune_epochs: epochs of retraining after each pruning step.
        steps: pruning steps to reach the amount (iterative pruning: prune a step,
            retrain, measure, repeat).
        scope: magnitude pruning over all layers at once or to the amount in each layer.
        importance: how `structured` ranks channels (Torch-Pruning importances).
        score: how `neurons`/`channels` rank units by their activations: mean
            activation, or APoZ (average percentage of zeros, Hu et al. 2016).
        lr_factor: the fine-tuning learning rate over the recipe's.
        calibration_batches: training batches that calibrate static quantization and
            score units by activation.
    """

    finetune_epochs: int = 2
    steps: int = 1
    scope: Literal["global", "layer"] = "global"
    importance: Literal["magnitude", "bn_scale", "taylor"] = "magnitude"
    score: Literal["mean", "apoz"] = "mean"
    lr_factor: float = 1.0
    calibration_batches: int = 20

    def __post_init__(self) -> None:
        for name in ("scope", "importance", "score"):
            allowed = get_args(get_type_hints(MethodOptions)[name])
            if getattr(self, name) not in allowed:
                raise RecipeError(
                    f"--{name} {getattr(self, name)!r}: choose {' or '.join(allowed)}"
                )
        for flag, value, ok, fix in (
            ("--steps", self.steps, self.steps >= 1, "1 or more"),
            ("--finetune", self.finetune_epochs, self.finetune_epochs >= 0, "0 or more epochs"),
            ("--lr-factor", self.lr_factor, self.lr_factor > 0, "a positive factor"),
            ("calibration_batches", self.calibration_batches, self.calibration_batches >= 1,
             "1 or more"),
        ):  # fmt: skip
            if not ok:
                raise RecipeError(f"{flag} {value}: give {fix}")
