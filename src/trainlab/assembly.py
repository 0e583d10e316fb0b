"""A prepared recipe → the parts of one fit: model, loss, optimizer, schedule, techniques,
batches and the engine's State.

`runs.train` assembles a fit here and then only resumes, runs and records it; anything
else that trains a model from a recipe (fine-tuning, distributed training) assembles
the same parts the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainlab.config.loading import load_recipe
from trainlab.config.schema import Recipe
from trainlab.data.batching import TensorBatches
from trainlab.engine import determinism
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.models.summary import ModelSummary, summarize
from trainlab.prepare import Prepared, prepare

#: Training samples re-evaluated in eval mode after each epoch (the `train_eval_*` metrics).
TRAIN_EVAL_SAMPLES = 2048


@dataclass
class Fit:
    """Everything `Engine` needs for one fit of a recipe, built but not yet run."""

    state: State
    techniques: list[Technique]  # the recipe's (and any extra ones), in recipe order
    train: TensorBatches
    val: TensorBatches | None  # None for a refit (data.val_size 0)
    test: TensorBatches
    train_eval: TensorBatches  # a fixed training subset evaluated like validation

    @property
    def model(self) -> torch.nn.Module:
        """The model being fitted."""
        return self.state.model


def build_techniques(recipe: Recipe) -> list[Technique]:
    """Instantiate the recipe's techniques; refuse target rewriters that cannot share a run."""
    techniques = [spec.entry.builder(spec.params) for spec in recipe.techniques]
    rewriting = [
        (s.name, t)
        for s, t in zip(recipe.techniques, techniques, strict=True)
        if t.rewrites_targets
    ]
    if len(rewriting) > 1:
        # Target rewriters (mixup, cutmix) may take turns batch by batch when every one
        # of them sets `alternate: true`; otherwise the combination is refused.
        if not all(getattr(t, "alternate", False) for _, t in rewriting):
            raise RecipeError(
                f"techniques: {' and '.join(n for n, _ in rewriting)} both rewrite the "
                "targets and cannot be combined in one run; keep one, or set "
                "alternate: true on each to take turns batch by batch"
            )
        for slot, (_, t) in enumerate(rewriting):
            t.take_turns(slot, len(rewriting))
    return techniques  # declared conflicts are refused when the recipe loads (schema.py)


def assemble(
    prepared: Prepared,
    extra_techniques: list[Technique] | None = None,
    run_dir: Path | None = None,
) -> Fit:
    """Seed, build the model and its optimizer, schedule, techniques and batches."""
    from trainlab.optim.optimizers import build_optimizer
    from trainlab.optim.schedules import build_schedule

    recipe, t = prepared.recipe, prepared.recipe.train
    determinism.seed_everything(t.seed)
    model = prepared.build_model()
    optimizer = build_optimizer(
        model, t.optimizer.name, t.optimizer.params, t.lr, t.weight_decay, t.decay_norm_and_bias
    )
    train = prepared.batches("train", shuffle=True)
    schedule = build_schedule(optimizer, t.schedule.name, t.schedule.params, t.epochs, len(train))
    state = State(
        model=model,
        optimizer=optimizer,
        loss_fn=prepared.build_loss(),
        device=prepared.device,
        max_epochs=t.epochs,
        schedule=schedule,
        seed=t.seed,
        task=prepared.info,
        run_dir=run_dir,
    )
    return Fit(
        state=state,
        techniques=build_techniques(recipe) + list(extra_techniques or []),
        train=train,
        val=prepared.batches("val") if len(prepared.splits.val) else None,
        test=prepared.batches("test"),
        train_eval=prepared.batches("train", limit=TRAIN_EVAL_SAMPLES),
    )


def summarize_recipe(recipe: Any, overrides: list[str] | dict | None = None) -> ModelSummary:
    """Build a recipe's model for its dataset and summarize it at the recipe's batch size."""
    r = load_recipe(recipe, overrides)
    prepared = prepare(r, check_finite=False)
    torch.manual_seed(r.train.seed)
    x, _ = prepared.tensors("train", limit=r.train.batch_size)
    return summarize(prepared.build_model(), prepared.info, x, name=r.model.name)
