"""The mutable state of one fit, shared by the engine and the techniques."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.engine.events import StopReason
from trainlab.tasks import TaskInfo


@dataclass
class State:
    """Everything a technique may read or change during a fit.

    Techniques change training by replacing fields: `batch` (inputs, targets) at
    BATCH_START, `loss` at AFTER_LOSS, `skip_step` to accumulate gradients, `loss_fn` to
    change how the loss is computed, `autocast_dtype` for mixed precision.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    device: torch.device
    max_epochs: int
    schedule: Any = None
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken (batches seen)
    batch_index: int = 0  # within the epoch
    batch: tuple[torch.Tensor, torch.Tensor] | None = None
    outputs: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    skip_step: bool = False
    autocast_dtype: torch.dtype | None = None
    grad_scaler: Any = None
    #: The training batches (set by the engine): techniques that need the epoch length
    #: (gradient accumulation) or a pass over the data (SWA's batch-norm update) read it.
    train_batches: Any = None
    eval_split: str = ""
    eval_metrics: dict[str, float] = field(default_factory=dict)
    epoch_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_message: str = ""
    #: The recipe's `train.seed`: streams of randomness a technique draws (augmentation)
    #: derive from it, so different seeds augment differently.
    seed: int = 0
    #: What the model maps to (target kind, head size): read by target rewriters.
    task: TaskInfo | None = None
    #: The run directory being written, or None for a fit outside a run (the LR finder).
    run_dir: Path | None = None
    #: Test metrics, set by the engine at the end of the fit when it has a test split.
    test_metrics: dict[str, float] = field(default_factory=dict)
    #: The epoch whose weights the fit ends with when a technique restored earlier ones
    #: (early stopping), so the run reports that epoch's validation metrics.
    final_epoch: int | None = None
    #: Set once the model holds the weights the fit ends with: weight-averaging
    #: techniques must not swap theirs in afterwards.
    final_weights: bool = False
    #: The step whose gradients a grad scaler has already unscaled (once per step).
    unscaled_at_step: int | None = None
    #: A data-parallel fit over several processes: the model as the training forward
    #: calls it (DistributedDataParallel around `model`) and the collective operations
    #: the engine reduces with (engine/collective.py). None in a one-process fit.
    ddp: Any = None
    collective: Any = None
    #: Outputs of monitors (gradient flow, activation statistics, divergence events).
    extras: dict[str, Any] = field(default_factory=dict)

    def final_metrics(self) -> dict[str, float]:
        """What metrics.json holds: the validation metrics of the epoch the fit ends with
        (early stopping may have restored an earlier one's weights), then the test
        metrics. Runs write it; loggers report it."""
        last = self.history[-1] if self.history else {}
        if self.final_epoch is not None:
            last = next((r for r in self.history if r.get("epoch") == self.final_epoch), last)
        metrics = {k: v for k, v in last.items() if k.startswith("val_")}
        metrics.update(self.test_metrics)
        return metrics
