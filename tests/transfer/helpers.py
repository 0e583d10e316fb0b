"""Models of every architecture built without data, and a probe to look inside a fit."""

from __future__ import annotations

import torch

from trainlab import catalog  # noqa: F401  (registers the architectures)
from trainlab.engine import Technique
from trainlab.models.registry import MODELS
from trainlab.tasks import TaskInfo

IMAGES = TaskInfo("multiclass", 10, (1, 28, 28), None)
FLAT = TaskInfo("multiclass", 10, (64,), None)
TEXT = TaskInfo("multiclass", 2, (20,), None, features={"kind": "text", "vocab_size": 50})
TABLE = TaskInfo(
    "binary",
    1,
    (8,),
    None,
    features={"kind": "tabular", "numeric": 5, "cardinalities": [3, 4, 5]},
)


def build(name: str, info: TaskInfo = IMAGES, seed: int = 0, **params) -> torch.nn.Module:
    """Architecture `name` with `params` for `info`, initialised from `seed`."""
    torch.manual_seed(seed)
    entry = MODELS.get(name)
    return entry.builder(entry.params(**params), info)


def with_classes(info: TaskInfo, n: int) -> TaskInfo:
    """`info` for a task with `n` classes."""
    return TaskInfo(info.target_kind, n, info.input_shape, None, features=info.features)


class Probe(Technique):
    """Calls `fn(state)` at `event`; looks inside a fit."""

    def __init__(self, event: str, fn, order: int = -1000) -> None:
        self.order = order
        setattr(self, f"on_{event}", fn)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter of `model`."""
    return {k: v.detach().clone() for k, v in model.named_parameters()}
