"""Helpers shared by techniques: choosing parameters by name, gradients, weight swaps.

Kept free of any particular technique so each technique module stays one screen long.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from pydantic import field_validator
from torch import nn

from trainlab.engine.loop import autocast
from trainlab.engine.state import State
from trainlab.errors import RecipeError
from trainlab.params import StrictModel

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ep|ba|dur)\s*$")


def lock_final_weights(state: State) -> None:
    """Declare the model's current weights final for the rest of the fit."""
    state.final_weights = True


def final_weights_locked(state: State) -> bool:
    """True once a technique has declared the model's weights final."""
    return state.final_weights


class LayerSelection(StrictModel):
    """Which parameters a technique acts on.

    `layers` holds shell-style patterns matched against parameter names as
    `model.named_parameters()` spells them (e.g. `"0.weight"`, `"*.conv*"`); empty means
    every weight matrix or convolution kernel (parameters with 2 or more dimensions),
    which leaves biases and normalization scales alone, as regularizers usually should.
    """

    layers: list[str] = []


def select_parameters(
    model: nn.Module, patterns: list[str], technique: str
) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) pairs matching `patterns`, or every ≥2-D weight when empty."""
    named = list(model.named_parameters())
    if not patterns:
        return [(n, p) for n, p in named if p.ndim >= 2]
    chosen = [(n, p) for n, p in named if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    if not chosen:
        names = ", ".join(n for n, _ in named[:8])
        raise RecipeError(
            f"techniques.{technique}.layers: {patterns} matches no parameter; "
            f"parameter names look like: {names}"
        )
    return chosen


def grads_unscaled(state: State) -> None:
    """Make `.grad` hold true gradients when a grad scaler (fp16) multiplied them.

    Every technique that reads or edits gradients before the optimizer step calls this
    first; the scaler allows one unscale per step, so it is done once and remembered.
    """
    scaler = state.grad_scaler
    if scaler is None or state.unscaled_at_step == state.step:
        return
    scaler.unscale_(state.optimizer)
    state.unscaled_at_step = state.step


def float_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the model's floating-point parameters and buffers."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def swap_in(model: nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Load `weights` (a subset of the state dict) into `model`; return what they replaced."""
    current = model.state_dict()
    saved = {k: current[k].detach().clone() for k in weights}
    with torch.no_grad():
        for k, v in weights.items():
            current[k].copy_(v)
    return saved


def as_tensors(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies fit for a checkpoint (contiguous CPU-independent clones)."""
    return {k: v.detach().clone().contiguous() for k, v in values.items()}


def batches_per_epoch(state: State) -> int | None:
    """Number of training batches in one epoch, when the engine knows it."""
    try:
        return len(state.train_batches)
    except TypeError:
        return None


def global_batch(state: State) -> int:
    """Index of the current batch counted from the start of the fit."""
    n = batches_per_epoch(state) or 0
    return state.epoch * n + state.batch_index


class Duration(StrictModel):
    """A point in training written Composer-style: `"3ep"`, `"200ba"` or `"0.75dur"`."""

    value: str

    @field_validator("value")
    @classmethod
    def _parse(cls, value: str) -> str:
        if not DURATION.match(str(value)):
            raise ValueError(
                f"{value!r} is not a duration; write epochs '3ep', batches '200ba' "
                "or a fraction of the fit '0.75dur'"
            )
        return value

    def reached(self, state: State) -> bool:
        """True once training has progressed to this point (at a batch or epoch start)."""
        amount, unit = parse_duration(self.value)
        if unit == "ep":
            return state.epoch >= amount
        n = batches_per_epoch(state) or 1
        done = state.epoch * n + state.batch_index
        if unit == "ba":
            return done >= amount
        return done >= amount * state.max_epochs * n


def parse_duration(text: str) -> tuple[float, str]:
    """('3ep') → (3.0, 'ep')."""
    match = DURATION.match(str(text))
    if match is None:
        raise RecipeError(f"{text!r} is not a duration; write '3ep', '200ba' or '0.75dur'")
    return float(match.group(1)), match.group(2)


def check_duration(value: Any) -> str:
    """Pydantic validator body for a duration-valued parameter."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{value}ep"
    Duration(value=value)
    return str(value)


def iter_norm_modules(model: nn.Module) -> Iterator[nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer of the model."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            yield m


@contextlib.contextmanager
def kept_norm_buffers(model: nn.Module) -> Iterator[None]:
    """Run an extra training-mode forward without it moving batch-norm statistics."""
    norms = list(iter_norm_modules(model))
    saved = [{k: b.clone() for k, b in m.named_buffers()} for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(norms, saved, strict=True):
                for k, b in m.named_buffers():
                    b.copy_(buffers[k])


@torch.no_grad()
def update_bn(
    model: nn.Module,
    batches: Iterable,
    autocast_dtype: torch.dtype | None = None,
    max_batches: int | None = None,
) -> None:
    """Recompute batch-norm running statistics as plain averages over `batches`.

    One forward pass in training mode with every BN layer's momentum set to None
    (torch's cumulative average), over at most `max_batches` batches. The weights are
    untouched, no random number is drawn, and each layer's `num_batches_tracked` is
    restored afterwards, so schedules keyed on it (the keras preset's warm start) go on
    as if the pass had not happened.
    """
    norms = list(iter_norm_modules(model))
    if not norms:
        return
    was_training = model.training
    saved = {m: (m.momentum, m.num_batches_tracked.clone()) for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]), autocast(device, autocast_dtype):
        for i, (x, _) in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            model(x)
    for m, (momentum, tracked) in saved.items():
        m.momentum = momentum
        m.num_batches_tracked.copy_(tracked)
    model.train(was_training)
