"""A model's structure as parameter shapes, and a built model resized to saved shapes.

A pruned network is the recipe's architecture with some layers narrower. Saving it as
"the recipe plus the shapes that changed" (`compression.shapes` in the run's recipe)
keeps it loadable without pickle: build the recipe's model, then `apply_shapes` replaces
every module whose parameters or buffers have another shape by a fresh module of the
same kind at the saved size, after which the saved safetensors weights fit.

Supported module kinds are the ones structured pruning changes: Linear, Conv1d/2d
(grouped and depthwise included), BatchNorm1d/2d, LayerNorm, GroupNorm and Embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Shapes = dict[str, list[int]]


def shapes_of(model: nn.Module) -> Shapes:
    """Every parameter's and buffer's shape, by state-dict name."""
    return {name: list(t.shape) for name, t in model.state_dict().items() if t.ndim}


def changed_shapes(model: nn.Module, reference: nn.Module) -> Shapes:
    """The shapes of `model` that differ from `reference` (the recipe's unpruned model)."""
    ref = shapes_of(reference)
    return {k: v for k, v in shapes_of(model).items() if ref.get(k) != v}


def _linear(m: nn.Linear, w: list[int]) -> nn.Module:
    return nn.Linear(w[1], w[0], bias=m.bias is not None)


def _conv(m: nn.modules.conv._ConvNd, w: list[int]) -> nn.Module:
    out_channels, in_per_group = w[0], w[1]
    # a depthwise conv stays depthwise; other grouped convs keep their group count
    groups = out_channels if m.groups == m.in_channels == m.out_channels else m.groups
    return type(m)(
        in_per_group * groups, out_channels, m.kernel_size, m.stride, m.padding,
        m.dilation, groups, bias=m.bias is not None, padding_mode=m.padding_mode,
    )  # fmt: skip


def _batchnorm(m: nn.modules.batchnorm._BatchNorm, w: list[int]) -> nn.Module:
    return type(m)(w[0], m.eps, m.momentum, m.affine, m.track_running_stats)


def _layernorm(m: nn.LayerNorm, w: list[int]) -> nn.Module:
    return nn.LayerNorm(w, m.eps, m.elementwise_affine, bias=m.bias is not None)


def _groupnorm(m: nn.GroupNorm, w: list[int]) -> nn.Module:
    return nn.GroupNorm(min(m.num_groups, w[0]), w[0], m.eps, m.affine)


def _embedding(m: nn.Embedding, w: list[int]) -> nn.Module:
    return nn.Embedding(w[0], w[1], padding_idx=m.padding_idx)


_NORM_KEYS = ("running_mean", "weight")

#: module kind → (the tensors whose shape decides its size, first present wins; a
#: builder of the module at that size)
_RESIZERS: dict[type, tuple[tuple[str, ...], Callable]] = {
    nn.Linear: (("weight",), _linear),
    nn.Conv1d: (("weight",), _conv),
    nn.Conv2d: (("weight",), _conv),
    nn.BatchNorm1d: (_NORM_KEYS, _batchnorm),
    nn.BatchNorm2d: (_NORM_KEYS, _batchnorm),
    nn.LayerNorm: (("weight",), _layernorm),
    nn.GroupNorm: (("weight",), _groupnorm),
    nn.Embedding: (("weight",), _embedding),
}


def apply_shapes(model: nn.Module, shapes: Shapes) -> list[str]:
    """Replace the modules of `model` whose tensors `shapes` gives another shape.

    Returns the names of the modules replaced (freshly initialised by torch: load the
    saved weights next, or re-initialise them for training from scratch). A shape for a
    tensor the model does not have, or for a module kind that cannot be resized, is a
    ValueError naming it.
    """
    own = model.state_dict()
    unknown = sorted(set(shapes) - set(own))
    if unknown:
        raise ValueError(
            f"compression.shapes names {unknown[:3]}, which this model does not have; "
            "the recipe's model section no longer matches the compressed run"
        )
    owners = {name.rpartition(".")[0] for name, shape in shapes.items()
              if list(own[name].shape) != list(shape)}  # fmt: skip
    replaced = []
    for owner in sorted(owners):
        module = model.get_submodule(owner)
        kind = next((k for k in _RESIZERS if type(module) is k), None)
        if kind is None:
            raise ValueError(
                f"compression.shapes resizes '{owner}' ({type(module).__name__}), a layer "
                "kind that cannot be rebuilt at another size"
            )
        keys, build = _RESIZERS[kind]
        prefix = f"{owner}." if owner else ""
        full = next(prefix + k for k in keys if prefix + k in own)
        size = shapes.get(full, list(own[full].shape))
        _set_submodule(model, owner, build(module, size))
        replaced.append(owner)
    return replaced


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    device = next((t.device for t in parent.parameters()), torch.device("cpu"))
    setattr(parent, child, module.to(device))
