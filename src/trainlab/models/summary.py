"""A model's layer table, parameter count, FLOPs per sample and activation memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainlab.tasks import TaskInfo


@dataclass
class LayerRow:
    """One leaf layer: its dotted name, type, output shape (per sample) and own parameters."""

    name: str
    kind: str
    output_shape: list[int]
    params: int


@dataclass
class ModelSummary:
    """What `trainlab models --summary` reports.

    Args:
        flops_per_sample: floating-point operations of one forward pass for one sample
            (a multiply-add counts 2), from torch.utils.flop_counter; recurrent layers
            are not counted by it and are estimated here from their weight shapes.
        activation_bytes: bytes of all layer outputs for one training batch — roughly
            the activation memory backpropagation keeps.
    """

    model: str
    params: int
    trainable_params: int
    flops_per_sample: int
    batch_size: int
    activation_bytes: int
    layers: list[LayerRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def example_input(info: TaskInfo, batch_size: int) -> torch.Tensor:
    """A valid input batch for `info`: zeros, or token id 1 (`<unk>`) for text."""
    x = torch.zeros((batch_size, *info.input_shape))
    if info.features.get("kind") == "text":
        x = torch.ones((batch_size, *info.input_shape))
    return x


def _rnn_flops(layer: nn.RNNBase, steps: int) -> int:
    # 2 FLOPs per multiply-add of the input and hidden matrices, every time step
    per_step = sum(p.numel() for n, p in layer.named_parameters() if n.startswith("weight"))
    return 2 * per_step * steps


def summarize(
    model: nn.Module, info: TaskInfo, batch: torch.Tensor | int, name: str = ""
) -> ModelSummary:
    """Measure `model` on an input batch (in eval mode, no gradients).

    `batch` is a real input batch, or a batch size for a synthetic one (`example_input`).
    """
    if isinstance(batch, int):
        batch = example_input(info, batch)
    batch_size = len(batch)
    rows: list[LayerRow] = []
    out_bytes = [0]
    rnn_flops = [0]
    hooks = []
    # time steps the recurrence runs for the one-sample FLOP count (packed: its real tokens)
    first = batch[:1]
    steps = int((first != 0).sum()) if not first.is_floating_point() else int(first.shape[-1])
    was_training = model.training
    model.eval()

    def record(mod_name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            tensor = output[0] if isinstance(output, tuple) else output
            if isinstance(tensor, nn.utils.rnn.PackedSequence):
                tensor = tensor.data
            if not isinstance(tensor, torch.Tensor):
                return
            out_bytes[0] += tensor.numel() * tensor.element_size()
            if isinstance(module, nn.RNNBase):
                rnn_flops[0] += _rnn_flops(module, steps)
            if len(rows) < 10_000:
                own = sum(p.numel() for p in module.parameters(recurse=False))
                rows.append(LayerRow(mod_name, type(module).__name__, list(tensor.shape[1:]), own))

        return hook

    for mod_name, module in model.named_modules():
        leaf = not any(True for _ in module.children()) and not isinstance(
            module, nn.Sequential | nn.ModuleList
        )
        if mod_name and (leaf or isinstance(module, nn.RNNBase)):
            hooks.append(module.register_forward_hook(record(mod_name)))
    try:
        with torch.no_grad():
            model(batch)
            batch_rows, batch_bytes = list(rows), out_bytes[0]
            rows.clear()
            rnn_flops[0] = 0
            counter = FlopCounterMode(display=False)
            with counter:
                model(batch[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelSummary(
        name or type(model).__name__,
        params,
        trainable,
        int(counter.get_total_flops()) + rnn_flops[0],
        batch_size,
        batch_bytes,
        batch_rows,
    )
