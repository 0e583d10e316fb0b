"""What every compression method is given and what it gives back.

A method (magnitude pruning, neuron/channel pruning, structured pruning, int8
quantization) takes the model and a `CompressContext` — the source run's data exactly as
it was trained on, a way to fine-tune with the source recipe's optimizer, schedule and
technique stack, and a way to score a model on a split — and returns a `MethodResult`.
Methods never touch the source run's directory; `compress/api.py` writes the new run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainlab.engine.loop import Engine
from trainlab.engine.technique import Technique
from trainlab.prepare import Prepared


@dataclass
class MethodResult:
    """A compressed model and what the method did to it.

    Args:
        model: the compressed model (float weights; a quantized model for `int8`).
        method: the method as given, e.g. "magnitude:0.9".
        details: JSON-able facts (per-layer sparsity, units kept per layer, rounds…).
        notes: plain sentences the user must read (e.g. that masked weights make nothing
            faster on their own).
        masks: name → 0/1 tensor of the weights magnitude pruning zeroed (kept zero while
            later methods fine-tune), or None.
        met_target: False when an accuracy target stopped the method short of its amount.
    """

    model: nn.Module
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    masks: dict[str, torch.Tensor] | None = None
    met_target: bool = True


def main_score(metrics: dict[str, float], split: str) -> float:
    """The number compression must keep: accuracy for classification, r2 for regression."""
    for key in ("accuracy", "r2"):
        if f"{split}_{key}" in metrics:
            return float(metrics[f"{split}_{key}"])
    raise KeyError(f"no accuracy or r2 among {sorted(metrics)}")


@dataclass
class CompressContext:
    """The source run's data and recipe, with fine-tuning and scoring bound to them.

    Args:
        prepared: the source run's splits with its saved preprocessing, on `device`.
        reference_val: the source model's validation score (test score when the run has
            no validation split): what `target_drop` is measured from.
        target_drop: the most score (in its units: 0.01 = one point of accuracy) a
            method may lose against `reference_val`, or None for no target.
        progress: takes one line of progress for the user.
    """

    prepared: Prepared
    reference_val: float
    target_drop: float | None = None
    progress: Callable[[str], None] = lambda line: None

    @property
    def selection_split(self) -> str:
        """The split methods choose by: val, or test when the run trained without one."""
        return "val" if len(self.prepared.splits.val) else "test"

    def finetune(
        self,
        model: nn.Module,
        epochs: int,
        extra: Sequence[Technique] = (),
        lr_factor: float = 1.0,
    ) -> nn.Module:
        """Train `model` for `epochs` more epochs with the source recipe's optimizer,
        schedule and techniques (a fresh optimizer and schedule over those epochs, at
        `lr_factor` times the recipe's rate) plus `extra` techniques (e.g. one that keeps
        pruned weights at zero). In place; also returned. No test evaluation, no run
        directory."""
        from trainlab.assembly import assemble

        if epochs <= 0:
            return model
        t = self.prepared.recipe.train
        train = t.model_copy(update={"epochs": epochs, "lr": t.lr * lr_factor})
        recipe = self.prepared.recipe.model_copy(update={"train": train})
        fit = assemble(dataclasses.replace(self.prepared, recipe=recipe), list(extra),
                       model=model)  # fmt: skip
        engine = Engine(
            fit.state, fit.train, fit.val, None, fit.techniques,
            fit.state.task.target_kind,
            target_shift=fit.state.task.target_shift, target_scale=fit.state.task.target_scale,
        )  # fmt: skip
        engine.fit()
        model.eval()
        return model

    def metrics(self, model: nn.Module, split: str) -> dict[str, float]:
        """Loss and task metrics of `model` on `split` (`val_accuracy`, `test_loss`, …)."""
        from trainlab.engine.state import State

        p = self.prepared
        state = State(model, optimizer=None, loss_fn=p.build_loss(), device=p.device,
                      max_epochs=0)  # fmt: skip
        info = p.info
        engine = Engine(
            state,
            [],
            None,
            None,
            [],
            info.target_kind,
            target_shift=info.target_shift,
            target_scale=info.target_scale,
        )
        with torch.no_grad():
            return engine.evaluate(split, p.batches(split))

    def score(self, model: nn.Module, split: str | None = None) -> float:
        """`main_score` of `model` on `split` (default: the selection split)."""
        split = split or self.selection_split
        return main_score(self.metrics(model, split), split)

    def meets_target(self, score: float) -> bool:
        """Whether a selection-split score is within `target_drop` of the source's."""
        return self.target_drop is None or score >= self.reference_val - self.target_drop - 1e-12

    def train_batches(self, limit: int | None = None):
        """Shuffled-free training batches (first `limit` rows): for activation statistics
        and calibration."""
        return self.prepared.batches("train", limit=limit)
