"""Which weights magnitude pruning zeroes, keeping them zero, and counting them.

A mask is a float 0/1 tensor of a weight's shape, keyed by the weight's state-dict name
("1.weight"); 0 marks a pruned weight. Only the weights of Linear and Conv layers are
pruned: biases and normalization parameters are few and each one matters, and by
default the final (output) layer is left whole too — it is small and every one of its
weights feeds a prediction directly (Han et al. 2015 and Zhu & Gupta 2017 leave it
dense as well).

`KeepMasks` is the technique that keeps pruned weights at zero while a pruned model
fine-tunes: an optimizer with momentum (Adam's moments, SGD's velocity) keeps moving a
weight after its gradient is gone, so the masks are re-applied after every step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainlab.engine.order import Slot
from trainlab.engine.state import State
from trainlab.engine.technique import Technique
from trainlab.errors import RecipeError, RunError

Masks = dict[str, torch.Tensor]

#: The layer kinds whose weights are pruned (Conv covers 1d/2d/3d and transposed).
PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd)


def prunable_weights(model: nn.Module, exclude_last: bool = True) -> dict[str, nn.Parameter]:
    """The weights of the model's Linear and Conv layers, by state-dict name, in module
    order. With `exclude_last`, the last of them — the output layer in trainlab's models
    (the classifier or regression head) — is left out."""
    found: dict[str, nn.Parameter] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, PRUNABLE) and isinstance(weight, nn.Parameter):
            if id(weight) not in seen:  # a tied weight is pruned once
                seen.add(id(weight))
                found[f"{name}.weight" if name else "weight"] = weight
    if exclude_last and found:
        found.pop(list(found)[-1])
    return found


def output_layer(model: nn.Module) -> str | None:
    """The state-dict name of the weight `exclude_last` leaves whole, or None."""
    names = list(prunable_weights(model, exclude_last=False))
    return names[-1] if names else None


def _weights_to_prune(model: nn.Module, exclude_last: bool, what: str) -> dict[str, nn.Parameter]:
    weights = prunable_weights(model, exclude_last)
    if not weights:
        besides = " besides its output layer, which is left whole" if exclude_last else ""
        raise RecipeError(
            f"{what}: the model has no Linear or Conv layer to prune{besides}; "
            "prune a model with hidden layers"
        )
    return weights


def magnitude_masks(
    model: nn.Module,
    sparsity: float,
    scope: str = "global",
    exclude_last: bool = True,
) -> Masks:
    """Masks zeroing the `sparsity` share of smallest-|w| weights of the Linear and Conv
    layers (biases, norms and, with `exclude_last`, the final output layer are never
    pruned).

    `scope="global"` ranks |w| across all pruned layers at once, so layers with many
    small weights give up more (the usual choice: layers are not equally redundant);
    `scope="layer"` prunes each layer to `sparsity` on its own. Weights already zero rank
    first, so pruning a pruned model again keeps its zeros (iterative pruning's masks only
    grow). The count is exact: round(sparsity × weights) zeros, ties broken arbitrarily.
    """
    if not 0 <= sparsity < 1:
        raise RecipeError(
            f"magnitude: sparsity must be in [0, 1) (got {sparsity}); e.g. 0.9 zeroes 90 % "
            "of the weights"
        )
    if scope not in ("global", "layer"):
        raise RecipeError(f"magnitude: scope must be 'global' or 'layer' (got {scope!r})")
    weights = _weights_to_prune(model, exclude_last, "magnitude")
    if scope == "layer":
        return {name: _smallest_zeroed(w.detach().abs(), sparsity) for name, w in weights.items()}
    flat = torch.cat([w.detach().abs().flatten().float().cpu() for w in weights.values()])
    mask = _smallest_zeroed(flat, sparsity)
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = mask[start : start + w.numel()].view_as(w).to(w.device)
        start += w.numel()
    return masks


def _smallest_zeroed(magnitude: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A float 0/1 mask of `magnitude`'s shape with its round(sparsity·n) smallest at 0."""
    mask = torch.ones(magnitude.shape, dtype=torch.float32, device=magnitude.device)
    k = round(sparsity * magnitude.numel())
    if k:
        smallest = torch.topk(magnitude.flatten().float(), k, largest=False).indices
        mask.view(-1)[smallest] = 0.0
    return mask


def threshold_masks(model: nn.Module, threshold: float, exclude_last: bool = True) -> Masks:
    """Masks zeroing every Linear/Conv weight with |w| < `threshold` (|w| = threshold is
    kept); same layers as `magnitude_masks`. The sparsity is whatever the threshold gives,
    which makes the result depend on the weights' scale."""
    if not threshold > 0:
        raise RecipeError(
            f"threshold: the threshold must be a positive |w| (got {threshold}), "
            "e.g. threshold:0.01"
        )
    weights = _weights_to_prune(model, exclude_last, "threshold")
    return {name: (w.detach().abs() >= threshold).float() for name, w in weights.items()}


def _masked_parameters(model: nn.Module, masks: Masks) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """(parameter, bool tensor of its pruned entries) per mask; RunError on a mismatch."""
    params = dict(model.named_parameters())
    pairs = []
    for name, mask in masks.items():
        param = params.get(name)
        if param is None:
            raise RunError(
                f"masks name a weight '{name}' the model does not have; masks belong to the "
                "model they were computed on"
            )
        if tuple(mask.shape) != tuple(param.shape):
            raise RunError(
                f"mask for '{name}' has shape {list(mask.shape)} but the weight has "
                f"{list(param.shape)}; masks belong to the model they were computed on"
            )
        pairs.append((param, mask.to(param.device) == 0))
    return pairs


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> nn.Module:
    """Zero the masked weights of `model` in place (also returned)."""
    for param, pruned in _masked_parameters(model, masks):
        param.masked_fill_(pruned, 0.0)
    return model


def _counts(tensors: list[torch.Tensor]) -> dict[str, Any]:
    total = sum(t.numel() for t in tensors)
    zeros = sum(int((t == 0).sum()) for t in tensors)
    return {"total": total, "zeros": zeros, "sparsity": zeros / total if total else 0.0}


@torch.no_grad()
def sparsity_report(model: nn.Module, masks: Masks | None = None) -> dict[str, Any]:
    """How many weights are exactly zero: per layer (those `masks` name, or every Linear
    and Conv weight when None), over those layers together (`overall`), and over every
    parameter of the model, biases and unpruned layers included (`model`: the share of
    the saved file that is zeros). JSON-able."""
    params = dict(model.named_parameters())
    names = list(masks) if masks is not None else list(prunable_weights(model, False))
    layers = {}
    for name in names:
        w = params[name].detach()
        layers[name] = {"shape": list(w.shape), **_counts([w])}
    return {
        "layers": layers,
        "overall": _counts([params[n].detach() for n in names]),
        "model": _counts([p.detach() for p in params.values()]),
    }


class KeepMasks(Technique):
    """Keeps pruned weights at zero during a fit: applies the masks at the start and
    again after every optimizer step. The masks are its checkpoint state, so a fit
    resumed from a checkpoint keeps them.

    It runs after every technique that changes weights after the step at the default
    slot (lookahead's synchronisation, max_norm) and before ema/swa average the weights,
    so the averages see masked weights too (`Slot.MASK`). Gradients of pruned
    weights are left as they are (the step moves them; the re-application undoes it).
    """

    order = Slot.MASK

    def __init__(self, masks: Masks | None = None) -> None:
        self.masks: Masks = {n: m.detach().float() for n, m in (masks or {}).items()}
        self._live: list[tuple[nn.Parameter, torch.Tensor]] | None = None
        self._model: nn.Module | None = None

    def _bind(self, model: nn.Module) -> None:
        self._live = _masked_parameters(model, self.masks)
        self._model = model

    @torch.no_grad()
    def _apply(self, model: nn.Module) -> None:
        if self._live is None or self._model is not model:
            self._bind(model)
        for param, pruned in self._live:
            param.masked_fill_(pruned, 0.0)

    def on_fit_start(self, state: State) -> None:
        """Zero the masked weights before the first step (a resumed fit's too)."""
        self._bind(state.model)  # the model may have moved device since construction
        self._apply(state.model)

    def on_after_step(self, state: State) -> None:
        """Undo what the step did to the masked weights."""
        self._apply(state.model)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": {name: mask.cpu() for name, mask in self.masks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = {name: mask.float() for name, mask in state["masks"].items()}
        self._live = None
