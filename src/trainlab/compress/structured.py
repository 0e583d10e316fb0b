"""`structured` pruning of any trainlab architecture with Torch-Pruning's dependency graph.

Removing a channel from one layer forces changes elsewhere: the norm after it, the
inputs of every layer reading it, and — through residual additions — the same channel
of every layer added to it (a ResNet stage's convs and shortcut prune as one group).
Torch-Pruning (Fang et al. 2023, "DepGraph") traces the model once, builds those
groups and removes the same channels from every member, so a pruned ResNet still adds
matching shapes. `structured:AMOUNT` removes AMOUNT of each group's channels (local
ranking), ranked by `options.importance`:

- `magnitude`: group L2 norm of the weights (`MagnitudeImportance`);
- `bn_scale`: |γ| of the groups' batch norms (Network Slimming; `BNScaleImportance`) —
  groups without a batch norm are not ranked, so they keep their width;
- `taylor`: |w · ∂L/∂w| summed over the group (Molchanov et al. 2019;
  `TaylorImportance`), with gradients of the recipe's loss over the calibration
  batches, recomputed before every step.

Never pruned: the layers whose outputs are the model's predictions (the head, and for
wide_deep the wide part), and layers Torch-Pruning does not know how to narrow — LSTM,
GRU, mixture-of-experts, periodic numeric embeddings and batch renormalization are
registered as frozen layers, and every group that touches one keeps its width (the
notes name them). Embeddings keep their dimension (no group starts from them).
Torch-Pruning is optional (`pip install -e .[compress]`) and imported only here.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from trainlab.compress.context import CompressContext, MethodResult
from trainlab.compress.methods import METHODS, MethodOptions
from trainlab.compress.slicing import (
    calibration,
    check_amount,
    prune_iteratively,
    target_notes,
    verify_rebuild,
)
from trainlab.errors import RecipeError
from trainlab.models.layers import MixtureOfExperts, PeriodicEmbedding
from trainlab.models.norms import BatchRenorm
from trainlab.models.text import TextRNN

ROOTS = (nn.modules.conv._ConvNd, nn.Linear)

#: layer kinds Torch-Pruning must leave whole, and why
FROZEN: dict[type, str] = {
    nn.LSTM: "Torch-Pruning's LSTM pruner handles one layer only and mis-shapes its "
    "weights, and models/structure.py cannot rebuild recurrent layers",
    nn.GRU: "Torch-Pruning has no pruner for GRU layers",
    nn.RNN: "Torch-Pruning has no pruner for RNN layers",
    MixtureOfExperts: "its stacked expert weights are no layer Torch-Pruning knows",
    PeriodicEmbedding: "its per-column weights are no layer Torch-Pruning knows",
    BatchRenorm: "Torch-Pruning does not know batch renormalization and "
    "models/structure.py cannot rebuild it narrower",
}


def torch_pruning():
    """The Torch-Pruning module, or a RecipeError saying how to install it."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise RecipeError(
            "structured pruning needs Torch-Pruning: pip install -e .[compress]"
        ) from None
    return tp


def _channels(layer: nn.Module, seen: dict) -> tuple[int | None, int | None]:
    """(inputs, outputs) of a frozen layer, for Torch-Pruning's shape bookkeeping:
    from its attributes, or as `seen` on the example batch."""
    if isinstance(layer, nn.RNNBase):
        return layer.input_size, layer.hidden_size * (2 if layer.bidirectional else 1)
    if isinstance(layer, MixtureOfExperts):
        out = (layer.b2 if layer.b2 is not None else layer.b1).shape[1]
        return layer.router.in_features, out
    if isinstance(layer, BatchRenorm):
        return layer.num_features, layer.num_features
    return seen.get(layer, (None, None))


def _seen_widths(model: nn.Module, example: torch.Tensor) -> dict:
    """Input and output widths (dim 1) of the periodic embeddings on `example`."""
    seen: dict = {}

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        seen[module] = (inputs[0].shape[1], output.shape[1])

    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, PeriodicEmbedding)]  # fmt: skip
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _frozen_pruners(tp, model: nn.Module, example: torch.Tensor) -> dict[type, Any]:
    """A Torch-Pruning pruner that refuses to prune, for each frozen layer kind in
    `model` (the layer is one node of the graph, its widths known but fixed)."""
    seen = _seen_widths(model, example)

    class Frozen(tp.pruner.BasePruningFunc):
        """A layer that must keep its width: pruning it is refused."""

        def prune_out_channels(self, layer: nn.Module, idxs: list) -> nn.Module:
            raise RuntimeError(f"{type(layer).__name__} must not be pruned")

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: nn.Module) -> int | None:
            return _channels(layer, seen)[1]

        def get_in_channels(self, layer: nn.Module) -> int | None:
            return _channels(layer, seen)[0]

    kinds = {type(m) for m in model.modules()} & set(FROZEN)
    return {kind: Frozen() for kind in kinds}


def _output_layers(graph) -> list:
    """The layers (and bare parameters) whose outputs reach the model's outputs without
    passing another layer: the head(s), whose units are the predictions."""
    ends = [n for n in graph.module2node.values() if not n.outputs]
    found, seen, stack = [], set(), list(ends)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node.module, (*ROOTS, nn.Embedding, *FROZEN)) or isinstance(
            node.module, nn.Parameter
        ):
            found.append(node.module)
            continue
        stack.extend(node.inputs)
    return found


def forward_fn(model: nn.Module):
    """How Torch-Pruning should run `model` to trace it, or None for `model(x)`.

    A TextRNN is traced from its pooled sentence vector on (`encode(x)` detached), and
    an MLP from the output of its periodic numeric embedding on: Torch-Pruning's shape
    inference fails on packed sequences and on the embedding's concatenation with raw
    input columns, and nothing before those points is prunable anyway (recurrent layers
    and the embedding are frozen, embeddings start no group).
    """
    if isinstance(model, TextRNN):
        return lambda m, x: m.head(m.dense(m.dropout(m.encode(x).detach())))
    if any(isinstance(m, PeriodicEmbedding) for m in model.modules()):
        return _from_embeddings
    return None


def _from_embeddings(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`model(x)` with every periodic embedding's output detached (see `forward_fn`)."""
    hooks = [m.register_forward_hook(lambda mod, inputs, out: out.detach())
             for m in model.modules() if isinstance(m, PeriodicEmbedding)]  # fmt: skip
    try:
        return model(x)
    finally:
        for h in hooks:
            h.remove()


def _plan(tp, model: nn.Module, example: torch.Tensor, pruners: dict) -> tuple[list, list[str]]:
    """The layers Torch-Pruning must not prune (heads, and the roots of groups that touch
    a frozen layer or a bare parameter) and a note for each reason."""
    names = {m: n for n, m in model.named_modules()}
    names.update({p: n for n, p in model.named_parameters()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            graph = tp.DependencyGraph().build_dependency(
                model,
                example_inputs=example,
                forward_fn=forward_fn(model),
                customized_pruners=pruners,
                verbose=False,
            )
        except Exception as exc:  # Torch-Pruning's tracing has no error types of its own
            raise RecipeError(
                f"structured: Torch-Pruning cannot trace {type(model).__name__} "
                f"({type(exc).__name__}: {exc}); use magnitude pruning"
            ) from exc
    heads = _output_layers(graph)
    ignored, notes = list(heads), []
    for name, m in model.named_modules():
        if type(m) in FROZEN:
            notes.append(f"'{name}' ({type(m).__name__}) kept whole: {FROZEN[type(m)]}.")
    if isinstance(model, TextRNN):
        notes.append("Only the dense layers after the recurrent encoder are pruned.")
    for head in heads:
        notes.append(f"'{names.get(head, head)}' kept whole: its outputs are the model's.")
    for group in graph.get_all_groups(root_module_types=ROOTS):
        root = group[0].dep.target.module
        if any(root is h for h in heads):
            continue
        blockers = [
            d.target.module
            for d, _ in group
            if isinstance(d.target.module, tuple(FROZEN))
            or d.target.type == tp.ops.OPTYPE.PARAMETER
        ]
        if blockers:
            ignored.append(root)
            b = blockers[0]
            why = "stays whole" if type(b) in FROZEN else "Torch-Pruning cannot narrow alone"
            notes.append(
                f"'{names.get(root, root)}' kept whole: it is coupled to "
                f"'{names.get(b, b)}' ({type(b).__name__}), which {why}."
            )
    return ignored, notes


def _importance(tp, name: str):
    """The Torch-Pruning importance called `name`."""
    table = {
        "magnitude": lambda: tp.importance.MagnitudeImportance(p=2),
        "bn_scale": tp.importance.BNScaleImportance,
        "taylor": tp.importance.TaylorImportance,
    }
    if name not in table:
        raise RecipeError(f"unknown importance '{name}'; use magnitude, bn_scale or taylor")
    return table[name]()


def _gradients(model: nn.Module, ctx: CompressContext, options: MethodOptions) -> None:
    """Gradients of the recipe's loss over the calibration batches, in eval mode (no
    batch-norm statistics change), left in each parameter's `.grad` for Taylor."""
    loss_fn = ctx.prepared.build_loss()
    model.eval()
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for x, y in calibration(ctx, options):
            loss_fn(model(x), y).backward()


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output width of every conv and dense layer, by name."""
    return {
        n: (m.out_features if isinstance(m, nn.Linear) else m.out_channels)
        for n, m in model.named_modules()
        if isinstance(m, ROOTS)
    }


def _parameters(model: nn.Module) -> int:
    """How many weights `model` has."""
    return sum(p.numel() for p in model.parameters())


def _pruner(
    tp, model: nn.Module, example: torch.Tensor, amount: float, options: MethodOptions
) -> tuple[Any, list[str]]:
    """Torch-Pruning's pruner for `model` (local ranking, `options.steps` steps) and
    the notes on what it leaves whole."""
    pruners = _frozen_pruners(tp, model, example)
    ignored, notes = _plan(tp, model, example, pruners)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.BasePruner(
            model,
            example,
            importance=_importance(tp, options.importance),
            pruning_ratio=amount,
            iterative_steps=max(1, int(options.steps)),
            ignored_layers=ignored,
            customized_pruners=pruners,
            root_module_types=list(ROOTS),
            forward_fn=forward_fn(model),
        )
    return pruner, notes


@METHODS.register(
    "structured",
    description="remove channels of any architecture with Torch-Pruning's dependency "
    "graph (residual groups pruned together); magnitude, bn_scale or taylor importance",
)
def build_structured(
    model: nn.Module, amount: float | None, ctx: CompressContext, options: MethodOptions
) -> MethodResult:
    """Structured channel pruning of any trainlab model: each coupled group of layers
    loses `amount` of its channels, in `options.steps` steps with fine-tuning between
    them, stopping when the accuracy target fails."""
    tp = torch_pruning()
    amount = check_amount("structured", amount)
    model = copy.deepcopy(model).eval()
    example = next(iter(ctx.train_batches(4)))[0]
    before, params = layer_widths(model), _parameters(model)
    pruner, notes = _pruner(tp, model, example, amount, options)

    def prune_step(m: nn.Module, step: int, fraction: float) -> None:
        """One Torch-Pruning step (fresh gradients first for Taylor)."""
        if options.importance == "taylor":
            _gradients(m, ctx, options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner.step()
        m.zero_grad(set_to_none=True)
        if step == 1 and layer_widths(m) == before:
            arch = ctx.prepared.recipe.model.name
            raise RecipeError(_nothing_pruned(arch, amount, options, notes))

    run = prune_iteratively(model, amount, ctx, options, prune_step, layer_widths)
    verify_rebuild(run.model, ctx, example)
    after = layer_widths(run.model)
    layers = {n: {"before": before[n], "after": after[n]} for n in before if after[n] != before[n]}
    details = {
        "layers": layers,
        "importance": options.importance,
        "steps": run.steps,
        "chosen_step": run.chosen,
        "reference_score": ctx.reference_val,
        "amount_reached": run.steps[run.chosen - 1]["amount"],
        "parameters": {"before": params, "after": _parameters(run.model)},
    }
    summary = (
        f"structured: Torch-Pruning narrowed {len(layers)} layers (parameters "
        f"{params:,} → {_parameters(run.model):,}), removing each coupled group's "
        f"channels together; a smaller dense model, faster as it is."
    )
    notes = [summary, *notes, *_embedding_notes(run.model)]
    notes += target_notes(run, amount, ctx)
    return MethodResult(run.model, f"structured:{amount:g}", details, notes, met_target=run.reached)


def _nothing_pruned(arch: str, amount: float, options: MethodOptions, notes: list[str]) -> str:
    """The message for a structured step that removed no channel."""
    if options.importance == "bn_scale":
        return (
            f"structured:{amount:g} with importance bn_scale removed nothing from this "
            f"{arch}: no prunable layer is followed by batch norm; use magnitude or taylor"
        )
    kept = " ".join(notes)
    return (
        f"structured:{amount:g} removed no channel from this {arch} ({kept}); use a "
        "larger amount, or magnitude pruning"
    )


def _embedding_notes(model: nn.Module) -> list[str]:
    """A note when the model has embeddings (their dimension is never pruned)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    if not names:
        return []
    return [
        f"Embeddings ({', '.join(names[:4])}{', …' if len(names) > 4 else ''}) keep "
        "their dimension: Torch-Pruning starts groups from conv and dense layers only."
    ]
