"""Features from any layer of a model: the output of one named module, and the layer list.

Feature extraction (seed 000 §4.1: Keras' `Model(model.input, model.get_layer(index=-2)
.output)`) turns a trained network into a fixed feature map for another model — a linear
classifier, a nearest-neighbour search, a plot. Here a layer is addressed by its module
name as `model.named_modules()` spells it ("8" in an `nn.Sequential` cnn, "features.3"
in vgg_small, "encoder.rnn" …), and a forward hook records what it outputs while the
model runs in eval mode without gradients. `trainlab models --layers RUN` lists the
names with their output shapes.

Negative indices count the top-level children in the order the model registers them
(for an `nn.Sequential`, the order they run): "-1" is the last one (usually the head),
"-2" the second-to-last — Keras' `get_layer(index=-2)`, the penultimate representation.
A negative part may also follow a name ("features.-1": the last child of `features`).

What a layer's output becomes (`layer_output`): a tuple's first tensor (an LSTM's
sequence output, not its final state), a packed sequence padded back to one row per
sample, a layer run several times in one forward (one activation module shared by
several branches) its last call. Each sample's output is flattened into one row of
float32 values, so the result is always (N, features).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.errors import DataError, RecipeError
from trainlab.tasks import TaskInfo

#: Layer names an unknown-layer message lists before it says how many more there are.
LISTED_NAMES = 40


@dataclass
class LayerInfo:
    """One addressable module of a model, as `trainlab models --layers` shows it.

    Args:
        name: its dotted module name, what `--layer` takes.
        kind: its class name (Linear, Conv2d, Sequential …).
        output_shape: its output for one sample (without the batch dimension), as
            `features` reads it; None when the model's forward never calls it (a
            ModuleList, a module only used in training).
        params: parameters of the module and everything inside it.
        calls: how often one forward runs it (features take the last call).
        alias: the negative index naming it too, for top-level children ("-2").
    """

    name: str
    kind: str
    output_shape: list[int] | None
    params: int
    calls: int
    alias: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def layer_names(model: nn.Module) -> list[str]:
    """Every module name `--layer` accepts, in `named_modules()` order (the model itself,
    whose output is the prediction, is not a layer)."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, layer: str) -> str:
    """The module name `layer` refers to: itself, or with negative indices resolved.

    Raises a RecipeError naming the closest module names and listing them all.
    """
    modules = dict(model.named_modules())
    if layer and layer in modules:
        return layer
    resolved: list[str] = []
    module = model
    for part in str(layer).split("."):
        if _is_negative_index(part):
            children = list(module.named_children())
            if -int(part) > len(children):
                raise RecipeError(_unknown_message(model, layer, len(children), resolved))
            part = children[int(part)][0]
        resolved.append(part)
        module = modules.get(".".join(resolved))
        if module is None:
            raise RecipeError(_unknown_message(model, layer))
    return ".".join(resolved)


def _is_negative_index(part: str) -> bool:
    return part.startswith("-") and part[1:].isdigit() and int(part[1:]) > 0


def _unknown_message(
    model: nn.Module, layer: str, children: int | None = None, parent: list[str] | None = None
) -> str:
    """ "unknown layer 'x'; did you mean …? layers: …" — what a wrong `--layer` gets."""
    names = layer_names(model)
    if children is not None:
        where = f"'{'.'.join(parent)}'" if parent else "the model"
        return (
            f"unknown layer '{layer}': {where} has {children} child modules, so negative "
            f"indices run from -1 to -{children}; layers: {_listing(names)}"
        )
    close = difflib.get_close_matches(str(layer), names, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return (
        f"unknown layer '{layer}'; {hint}layers: {_listing(names)} (or a negative index, "
        "-2 = the second-to-last top-level layer; `trainlab models --layers RUN` shows shapes)"
    )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED_NAMES])
    more = len(names) - LISTED_NAMES
    return f"{shown}, … {more} more" if more > 0 else shown


def layer_output(output: Any, total_length: int | None = None) -> torch.Tensor | None:
    """The tensor a hook's `output` stands for: itself, a tuple's or list's first tensor,
    a PackedSequence padded to (batch, `total_length` or its longest, …); None if none."""
    if isinstance(output, nn.utils.rnn.PackedSequence):  # a tuple too: test it first
        padded, _ = nn.utils.rnn.pad_packed_sequence(
            output, batch_first=True, total_length=total_length
        )
        return padded
    if isinstance(output, tuple | list):
        found = (layer_output(o, total_length) for o in output)
        return next((t for t in found if t is not None), None)
    return output if isinstance(output, torch.Tensor) else None


@contextmanager
def _recording(modules: dict[str, nn.Module], total_length: int | None) -> Iterator[dict]:
    """Forward hooks on `modules`; yields {name: [calls, last output or None]}.

    Outputs are copied: a later in-place operation (`ReLU(inplace=True)`) must not turn
    a layer's recorded output into the next layer's."""
    seen: dict[str, list] = {name: [0, None] for name in modules}

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            seen[name][0] += 1
            tensor = layer_output(output, total_length)
            seen[name][1] = None if tensor is None else tensor.detach().clone()

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in modules.items()]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _total_length(x: torch.Tensor) -> int | None:
    """Sequence length packed outputs are padded back to: a token-id batch's width."""
    return int(x.shape[1]) if x.ndim == 2 and not x.is_floating_point() else None


@torch.no_grad()
def extract(model: nn.Module, x: torch.Tensor, layer: str, batch_size: int = 256) -> np.ndarray:
    """Layer `layer`'s outputs for the model inputs `x`: (N, features) float32.

    `x` is already the model's input (preprocessed, on the model's device); batches of
    `batch_size` rows run through the model in eval mode (its mode is restored after),
    each sample's output flattened into one row.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1 (got {batch_size})")
    if len(x) == 0:
        raise DataError("no input rows to extract features from")
    name = resolve_layer(model, layer)
    module = dict(model.named_modules())[name]
    was_training = model.training
    model.eval()
    rows = []
    try:
        with _recording({name: module}, _total_length(x)) as seen:
            for start in range(0, len(x), batch_size):
                batch = x[start : start + batch_size]
                seen[name][:] = [0, None]
                model(batch)
                rows.append(_rows(seen[name], name, module, len(batch)))
    finally:
        model.train(was_training)
    return np.concatenate(rows)


def _rows(record: list, name: str, module: nn.Module, batch: int) -> np.ndarray:
    """One batch's recorded output as (batch, features) float32, or a RecipeError saying
    why this layer cannot give features."""
    calls, output = record
    if calls == 0:
        members = [f"{name}.{child}" for child, _ in module.named_children()]
        hint = f"; name one of its members: {', '.join(members)}" if members else ""
        raise RecipeError(
            f"layer '{name}' ({type(module).__name__}) is not run by the model's forward "
            f"in eval mode, so it has no output{hint}"
        )
    if output is None:
        raise RecipeError(f"layer '{name}' ({type(module).__name__}) outputs no tensor")
    if output.ndim == 0 or output.shape[0] != batch:
        raise RecipeError(
            f"layer '{name}' gives an output of shape {tuple(output.shape)} for a batch of "
            f"{batch} samples, not one row per sample; choose another layer"
        )
    return output.reshape(batch, -1).float().cpu().numpy()


def example_input(info: TaskInfo, device: torch.device | str = "cpu") -> torch.Tensor:
    """One model input of the run's shape: token id 1 (`<unk>`, never padding, so packed
    recurrences see a full sentence) for text, zeros for everything else."""
    if (info.features or {}).get("kind") == "text":
        return torch.ones((1, *info.input_shape), dtype=torch.long, device=device)
    return torch.zeros((1, *info.input_shape), dtype=torch.float32, device=device)


@torch.no_grad()
def list_layers(model: nn.Module, example: torch.Tensor) -> list[LayerInfo]:
    """Every addressable module with its type, per-sample output shape, parameters and
    calls, from one forward of `example` (one sample; eval mode, restored after)."""
    modules = {name: m for name, m in model.named_modules() if name}
    children = [name for name, _ in model.named_children()]
    aliases = {name: str(i - len(children)) for i, name in enumerate(children)}
    was_training = model.training
    model.eval()
    try:
        with _recording(modules, _total_length(example)) as seen:
            model(example[:1])
    finally:
        model.train(was_training)
    rows = []
    for name, module in modules.items():
        calls, output = seen[name]
        shape = None
        if output is not None and output.ndim > 0:
            shape = list(output.shape[1:]) if output.shape[0] == 1 else list(output.shape)
        params = sum(p.numel() for p in module.parameters())
        rows.append(LayerInfo(name, type(module).__name__, shape, params, calls, aliases.get(name)))
    return rows


def recipe_layers(
    recipe: Any, overrides: list[str] | dict | None = None
) -> tuple[str, list[LayerInfo]]:
    """(architecture name, layers) of a recipe's model, built untrained for its dataset
    (seeded as training seeds it) and run on one real training sample."""
    from trainlab.config.loading import load_recipe
    from trainlab.prepare import prepare

    r = load_recipe(recipe, overrides)
    prepared = prepare(r, check_finite=False)
    torch.manual_seed(r.train.seed)
    x, _ = prepared.tensors("train", limit=1)
    return r.model.name, list_layers(prepared.build_model(), x)
