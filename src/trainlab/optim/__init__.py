"""Losses, optimizers and learning-rate schedules a recipe's `train` section names."""

from __future__ import annotations

from trainlab.optim.losses import LOSSES, build_loss
from trainlab.optim.optimizers import OPTIMIZERS, build_optimizer, split_decay_groups
from trainlab.optim.schedules import (
    SCHEDULES,
    LRSchedule,
    ScheduleParams,
    build_schedule,
    schedule_factor,
)

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "LRSchedule",
    "ScheduleParams",
    "build_loss",
    "build_optimizer",
    "build_schedule",
    "schedule_factor",
    "split_decay_groups",
]
