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
from trainlab.engine.checkpoint import CheckpointStore
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.loggers import build_loggers
from trainlab.models.summary import ModelSummary, summarize
from trainlab.prepare import Prepared, prepare
from trainlab.store.rundir import RunDir

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
    #: What `model.init_from` loaded (transfer.init's report); None when the recipe has no
    #: init_from, a model was passed in, or the fit resumes (its checkpoint's weights win)
    init_report: dict[str, Any] | None = None

    @property
    def model(self) -> torch.nn.Module:
        """The model being fitted."""
        return self.state.model


def build_techniques(recipe: Recipe) -> list[Technique]:
    """Instantiate the recipe's techniques; target rewriters that alternate take turns.

    Combinations that cannot share a run (declared conflicts, rewriters that do not all
    set `alternate: true`) were refused when the recipe loaded (`check_combination`).
    """
    techniques = [spec.entry.builder(spec.params) for spec in recipe.techniques]
    rewriting = [t for t in techniques if t.rewrites_targets]
    if len(rewriting) > 1:
        for slot, technique in enumerate(rewriting):
            technique.take_turns(slot, len(rewriting))
    return techniques


def assemble(
    prepared: Prepared,
    extra_techniques: list[Technique] | None = None,
    run_dir: Path | None = None,
    model: torch.nn.Module | None = None,
    world: Any = None,
) -> Fit:
    """Seed, build the model and its optimizer, schedule, techniques and batches.

    `model` is one to fit instead of a freshly built one (fine-tuning a pruned or
    transferred model with the recipe's optimizer, schedule and techniques). A freshly
    built model starts from `model.init_from`'s weights when the recipe names some, before
    the optimizer sees it; not when the fit in `run_dir` is about to resume from a
    checkpoint, which replaces every weight anyway (and the source may be gone by then).

    `world` (distributed.World) makes this one process of a data-parallel fit: its
    shard of every batch, the model wrapped in DistributedDataParallel (batch norm
    synchronised on CUDA)."""
    from trainlab.optim.optimizers import build_optimizer
    from trainlab.optim.schedules import build_schedule

    recipe, t = prepared.recipe, prepared.recipe.train
    determinism.seed_everything(t.seed)
    init_report = None
    if model is None:
        model = prepared.build_model()
        init_report = _apply_init_from(prepared, model, run_dir)
    else:
        model = model.to(prepared.device)
    if world is not None and prepared.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    techniques = build_techniques(recipe) + list(extra_techniques or [])
    parts = next((p for p in (t.optimizer_parts(model) for t in techniques) if p), None)
    optimizer = build_optimizer(
        model, t.optimizer.name, t.optimizer.params, t.lr, t.weight_decay,
        t.decay_norm_and_bias, parts=parts,
    )  # fmt: skip
    shard = world.shard if world is not None else None
    train = prepared.batches("train", shuffle=True, shard=shard)
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
    if world is not None:
        from trainlab.distributed import ProcessSeed, wrap

        state.ddp, state.collective = wrap(model, world, prepared.device, recipe)
        techniques.append(ProcessSeed(world.rank))
    writes = world is None or world.is_main  # rank 0 alone writes the run's files
    return Fit(
        state=state,
        techniques=techniques + (build_loggers(recipe, run_dir) if writes else []),
        train=train,
        val=prepared.batches("val", shard=shard) if len(prepared.splits.val) else None,
        test=prepared.batches("test", shard=shard),
        train_eval=prepared.batches("train", limit=TRAIN_EVAL_SAMPLES, shard=shard),
        init_report=init_report,
    )


def _apply_init_from(
    prepared: Prepared, model: torch.nn.Module, run_dir: Path | None
) -> dict[str, Any] | None:
    """Load `model.init_from`'s weights into a fresh model; its report (None: nothing done).

    No random number is drawn, so a fit started this way resumes bit for bit like any
    other. A run directory holding a checkpoint is about to resume from it: the source is
    not read again (runs.py keeps the report the run recorded when it started).
    """
    spec = prepared.recipe.model.init_from
    if spec is None:
        return None
    if run_dir is not None and CheckpointStore(RunDir(run_dir).checkpoints).candidates():
        return None
    from trainlab.transfer.init import init_from

    return init_from(model, spec, prepared.info, prepared.recipe.model.name)


def summarize_recipe(recipe: Any, overrides: list[str] | dict | None = None) -> ModelSummary:
    """Build a recipe's model for its dataset and summarize it at the recipe's batch size."""
    r = load_recipe(recipe, overrides)
    prepared = prepare(r, check_finite=False)
    torch.manual_seed(r.train.seed)
    x, _ = prepared.tensors("train", limit=r.train.batch_size)
    return summarize(prepared.build_model(), prepared.info, x, name=r.model.name)
