"""Which hidden units matter: activation statistics of the units of a trained network.

A hidden unit is one output of a hidden Linear (a neuron) or Conv2d (a channel). Its
statistics are taken where the network uses it: at the output of the activation that
follows the layer (after its norm when the norm comes first), or, for blocks without an
activation (the seed CNN's `conv → BN → pool`), at the last per-unit module before the
next layer reads it. Over a few training batches, in eval mode and without gradients,
each unit gets:

- its mean activation and mean absolute activation;
- APoZ, the Average Percentage of Zeros of its outputs (Hu et al. 2016, "Network
  Trimming"): the share of positions (samples × pixels for a channel) where a rectifier
  left it at zero (≤ 0 for the leaky and smooth rectifiers). A unit that is almost
  always off carries almost no signal to the next layer.

`unit_scores` turns them into one importance per unit (higher = keep): 1 − APoZ, ties
broken by mean |activation|, or mean |activation| alone. Where the observed output is
not rectified (tanh, sigmoid, no activation) zeros mean nothing and APoZ falls back to
mean |activation|. The walk of a network into `Chain`s (a layer's units, the per-unit
modules after it, the layer that reads them) lives here because it is what says where
a unit is observed; `slicing` narrows those same chains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from trainlab.models.layers import GlobalAvgPool, MixtureOfExperts
from trainlab.models.norms import BatchRenorm

#: activations whose zero (or negative) region means "unit off": APoZ applies
RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU)
ACTIVATIONS = (*RECTIFIERS, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Softplus, nn.Mish)
#: modules between a layer and its reader that act on each unit separately
ELEMENTWISE = (*ACTIVATIONS, nn.Dropout, nn.AlphaDropout, nn.Identity)
PER_UNIT_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
#: where a conv's channels become a dense layer's inputs
TO_DENSE = (nn.Flatten, GlobalAvgPool)


@dataclass
class Chain:
    """A layer's units and every module that touches them, in forward order.

    Args:
        producer: the Linear/Conv2d whose outputs are the units (state-dict prefix).
        kind: `dense` (neurons of a Linear) or `conv` (channels of a Conv2d).
        followers: modules between producer and consumer (norms, activations, pools,
            dropout, flatten or global pooling), by name.
        consumer: the next layer, which reads the units (None: the units are outputs).
        observe: the module whose output the statistics are taken at.
        rectified: whether that output is a rectifier's (APoZ is meaningful).
        blocker: why this chain cannot be narrowed exactly, or None.
    """

    producer: str
    kind: Literal["dense", "conv"]
    followers: list[str] = field(default_factory=list)
    consumer: str | None = None
    observe: str = ""
    rectified: bool = False
    blocker: str | None = None


def forward_sequence(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The modules of a purely sequential network in forward order, by qualified name:
    an nn.Sequential's children, or VGGSmall's features, pool and classifier. None for
    any other structure (residual, recurrent, branching models)."""
    from trainlab.models.vgg import VGGSmall

    if isinstance(model, nn.Sequential):
        return [(name, m) for name, m in model.named_children()]
    if isinstance(model, VGGSmall):
        seq = [(f"features.{n}", m) for n, m in model.features.named_children()]
        seq.append(("pool", model.pool))
        return seq + [(f"classifier.{n}", m) for n, m in model.classifier.named_children()]
    return None


def _is_norm(module: nn.Module) -> bool:
    """Any normalization layer (torch's or trainlab's own, e.g. batch renorm)."""
    torch_norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
    return isinstance(module, torch_norms) or type(module).__module__ == "trainlab.models.norms"


def _is_layer(module: nn.Module) -> bool:
    """A module that maps its inputs to new units (weights), not a per-unit op or a norm."""
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd, MixtureOfExperts)):
        return True
    passthrough = (*ELEMENTWISE, *POOLS, *TO_DENSE)
    if isinstance(module, passthrough) or _is_norm(module):
        return False
    return any(True for _ in module.parameters())


def unit_chains(model: nn.Module) -> list[Chain]:
    """Every hidden layer of a sequential network as a `Chain` (the output layer is
    not one: its units are the predictions). Empty for non-sequential models."""
    seq = forward_sequence(model)
    if seq is None:
        return []
    layers = [i for i, (_, m) in enumerate(seq) if _is_layer(m)]
    chains = []
    for a, b in zip(layers, layers[1:], strict=False):
        chains.append(_chain(seq, a, b))
    return chains


def _chain(seq: list[tuple[str, nn.Module]], a: int, b: int) -> Chain:
    """The chain from layer `seq[a]` to the layer `seq[b]` that reads its units."""
    name, producer = seq[a]
    kind = "conv" if isinstance(producer, nn.modules.conv._ConvNd) else "dense"
    between = seq[a + 1 : b]
    chain = Chain(name, kind, [n for n, _ in between], seq[b][0])
    observed = next(((n, m) for n, m in between if isinstance(m, ACTIVATIONS)), None)
    if observed is None:  # no activation: where the units leave the block
        before_dense = [(n, m) for n, m in between if not isinstance(m, TO_DENSE)]
        observed = before_dense[-1] if before_dense else (name, producer)
    chain.observe, chain.rectified = observed[0], isinstance(observed[1], RECTIFIERS)
    chain.blocker = _blocker(producer, between, seq[b][1])
    return chain


def _end_blocker(end: nn.Module, role: str) -> str | None:
    """Why a layer at one end of a chain (`role`: "it is" / "its reader is") stops it."""
    if isinstance(end, MixtureOfExperts):
        return f"{role} a mixture of experts, whose stacked expert weights are not narrowed"
    if isinstance(end, nn.Conv2d) and end.groups > 1:
        return f"{role} a grouped convolution (groups={end.groups}), whose groups fix its widths"
    if not isinstance(end, (nn.Linear, nn.Conv2d)):
        return f"{role} a {type(end).__name__}; only Linear and Conv2d layers are narrowed"
    return None


def _blocker(producer: nn.Module, between: list, consumer: nn.Module) -> str | None:
    """Why the units of `producer` cannot be removed exactly, or None."""
    found = _end_blocker(producer, "it is") or _end_blocker(consumer, "its reader is")
    if found:
        return found
    for name, m in between:
        if type(m) in PER_UNIT_NORMS or isinstance(m, (*ELEMENTWISE, *POOLS, *TO_DENSE)):
            continue
        kind = type(m).__name__
        if isinstance(m, BatchRenorm):
            return f"its norm {kind} '{name}' cannot be rebuilt narrower (models/structure.py)"
        if _is_norm(m):
            return (
                f"its norm {kind} '{name}' normalizes across units (removing one changes the rest)"
            )
        return f"{kind} '{name}' sits between it and its reader"
    return None


@dataclass
class UnitStats:
    """Activation statistics of one layer's units (one value per unit).

    Args:
        mean: mean activation. mean_abs: mean absolute activation.
        apoz: share of outputs ≤ 0 (zeros of a ReLU): the unit's "off" rate.
        count: values averaged per unit (samples × positions).
        rectified: whether they were taken at a rectifier's output.
    """

    mean: torch.Tensor
    mean_abs: torch.Tensor
    apoz: torch.Tensor
    count: int
    rectified: bool = True


class _Accumulator:
    """Per-unit sums of one module's outputs (units on dim 1), filled by a forward hook."""

    def __init__(self) -> None:
        self.total = self.total_abs = self.off = None
        self.count = 0

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Add one batch's outputs to the sums."""
        x = output.detach().float()
        x = x.transpose(0, 1).reshape(x.shape[1], -1)  # (units, samples × positions)
        parts = (x.sum(1), x.abs().sum(1), (x <= 0).sum(1).float())
        if self.total is None:
            self.total, self.total_abs, self.off = parts
        else:
            self.total, self.total_abs, self.off = (
                s + p for s, p in zip((self.total, self.total_abs, self.off), parts, strict=True)
            )
        self.count += x.shape[1]

    def stats(self, rectified: bool) -> UnitStats:
        """The means over everything seen."""
        if self.total is None:
            raise ValueError("no batch reached this layer; give at least one training batch")
        n = self.count
        return UnitStats(self.total / n, self.total_abs / n, self.off / n, n, rectified)


def activation_stats(
    model: nn.Module,
    points: dict[str, str],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    rectified: dict[str, bool] | None = None,
) -> dict[str, UnitStats]:
    """Statistics of the units of each layer in `points` (layer name → name of the
    module whose output is observed) over `batches`, in eval mode, without gradients.
    `rectified` says which observed outputs are a rectifier's (default: all)."""
    accumulators = {layer: _Accumulator() for layer in points}
    handles = [
        model.get_submodule(where).register_forward_hook(accumulators[layer])
        for layer, where in points.items()
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x, _ in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rect = rectified or {}
    return {layer: acc.stats(rect.get(layer, True)) for layer, acc in accumulators.items()}


def unit_scores(stats: UnitStats, score: Literal["mean", "apoz"]) -> torch.Tensor:
    """One importance per unit, higher = more important.

    `apoz`: 1 − APoZ, with ties (equal zero counts) broken by mean |activation| (the
    tie-break is smaller than one zero in `count`, so it never reorders distinct APoZ);
    outputs that are not rectified fall back to mean |activation|. `mean`: mean
    |activation| (the mean activation itself after a ReLU).
    """
    magnitude = stats.mean_abs
    if score == "mean" or not stats.rectified:
        return magnitude.clone()
    if score != "apoz":
        raise ValueError(f"unknown unit score '{score}'; use mean or apoz")
    tie_break = magnitude / magnitude.max().clamp(min=1e-12) * (0.5 / stats.count)
    return (1.0 - stats.apoz) + tie_break


def hidden_unit_scores(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    score: Literal["mean", "apoz"] = "apoz",
    chains: list[Chain] | None = None,
) -> dict[str, torch.Tensor]:
    """Importance of every hidden unit of a sequential network (`mlp`, `cnn`,
    `vgg_small`), by producer layer name: what `neurons` and `channels` rank by."""
    chains = unit_chains(model) if chains is None else chains
    points = {c.producer: c.observe for c in chains}
    stats = activation_stats(model, points, batches, {c.producer: c.rectified for c in chains})
    return {name: unit_scores(s, score) for name, s in stats.items()}
