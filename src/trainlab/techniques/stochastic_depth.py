"""`stochastic_depth`: randomly skip whole residual branches while training (drop-path).

Method card
    What: in training, the output of each residual branch is zeroed for a random subset
    of the samples and scaled by 1/keep for the others, so the block passes its input
    through the shortcut alone (Huang et al. 2016; timm's drop-path, per sample). The
    rate grows linearly with depth, from `drop_rate/L` at the first block to `drop_rate`
    at the last. Evaluation uses every branch unscaled.
    When: deep residual networks (ResNet-56 and deeper) that over-fit; shortens the
    effective depth during training. Little effect on ResNet-20.
    Parameters: `drop_rate` (0.1), `branch_end` (name pattern of the last module of each
    residual branch; default `layer*.*.norm2`, trainlab's `resnet` blocks).
    Conflicts: none. Models without matching modules are refused.
"""

from __future__ import annotations

import fnmatch

import torch
from pydantic import Field
from torch import nn

from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.techniques.registry import TECHNIQUES


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero whole samples of `x` with probability `rate`, scale the rest by 1/(1−rate)."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype)
    return x * mask.bernoulli_(keep) / keep


def depth_rates(n_blocks: int, drop_rate: float) -> list[float]:
    """Linear decay rule: block i of L (1-based) drops with probability drop_rate·i/L."""
    return [drop_rate * (i + 1) / n_blocks for i in range(n_blocks)]


class StochasticDepthParams(StrictModel):
    """Parameters of `stochastic_depth`."""

    drop_rate: float = Field(0.1, ge=0, lt=1)
    branch_end: str = "layer*.*.norm2"


@TECHNIQUES.register(
    "stochastic_depth",
    description="randomly skip residual branches while training (resnet); drop_rate",
    params=StochasticDepthParams,
    modalities="image",
    hint="use a residual model (model: resnet)",
)
class StochasticDepth(Technique):
    """Attaches drop-path to the end of every residual branch for the fit."""

    def __init__(self, params: StochasticDepthParams) -> None:
        self.params = params
        self.handles: list = []

    def on_fit_start(self, state: State) -> None:
        pattern = self.params.branch_end
        ends = [m for n, m in state.model.named_modules() if fnmatch.fnmatchcase(n, pattern)]
        if not ends:
            raise RecipeError(
                f"techniques.stochastic_depth.branch_end: no module matches '{pattern}'; "
                "use a residual model (model: resnet) or set branch_end to the name of the "
                "last layer of each residual branch"
            )
        for module, rate in zip(ends, depth_rates(len(ends), self.params.drop_rate), strict=True):
            self.handles.append(module.register_forward_hook(self._hook(rate)))

    @staticmethod
    def _hook(rate: float):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
            return drop_path(output, rate, module.training)

        return hook

    def on_fit_end(self, state: State) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
