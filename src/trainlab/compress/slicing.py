"""Physically narrowing layers, and the `neurons` and `channels` pruning methods.

`keep_units` keeps chosen output units of a Linear or Conv2d (its weight rows and
bias), the same features of the BatchNorm after it (weight, bias, running statistics)
and the matching inputs of the layer that reads them — one input per unit for a dense
or conv reader, H·W consecutive inputs per channel where a conv block is flattened into
the first dense layer, one per channel after global average pooling. Modules are
narrowed in place (as Torch-Pruning does): the same objects under the same names, with
their settings and hooks (e.g. the recipe's batch-norm warm start) intact, so the result
is the recipe's architecture with narrower layers: exactly what `models/structure.py`
saves and rebuilds. Removing units this way gives the same outputs as zeroing their
contribution to the reader; nothing needs sparse kernels to be faster.

`neurons` (hidden units of dense layers: mlp, and the dense head of cnn / vgg_small)
and `channels` (conv channels of cnn / vgg_small) rank units by their activations
(`importance`), prune the `amount` share of each hidden layer in `options.steps`
steps, fine-tune after each step and stop when the accuracy target fails.
`prune_iteratively` is that loop, shared with `structured`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainlab.compress.context import CompressContext, MethodResult
from trainlab.compress.importance import Chain, hidden_unit_scores, unit_chains
from trainlab.compress.methods import METHODS, MethodOptions
from trainlab.errors import RecipeError
from trainlab.models.structure import Shapes, apply_shapes, changed_shapes


def _narrow(module: nn.Module, key: str, index: torch.Tensor, dim: int) -> None:
    """Keep `index` along `dim` of `module`'s parameter or buffer `key` (if it has one):
    a new tensor under the same name, on the same device, trainable as before."""
    old = getattr(module, key, None)
    if old is None:
        return
    kept = old.detach().index_select(dim, index.to(old.device)).clone()
    if isinstance(old, nn.Parameter):
        setattr(module, key, nn.Parameter(kept, requires_grad=old.requires_grad))
    else:
        setattr(module, key, kept)


def _narrow_weights(layer: nn.Module, outs, ins, out_attr: str, in_attr: str) -> nn.Module:
    """Keep output units `outs` (weight rows and bias) and inputs `ins` (weight columns)
    of a Linear or Conv, updating its size attributes (None: all)."""
    if outs is not None:
        _narrow(layer, "weight", outs, 0)
        _narrow(layer, "bias", outs, 0)
        setattr(layer, out_attr, len(outs))
    if ins is not None:
        _narrow(layer, "weight", ins, 1)
        setattr(layer, in_attr, len(ins))
    return layer


def narrow_linear(
    layer: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> nn.Linear:
    """Narrow a Linear in place to output units `rows` and inputs `cols` (None: all)."""
    return _narrow_weights(layer, rows, cols, "out_features", "in_features")


def narrow_conv(
    layer: nn.Conv2d, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None
) -> nn.Conv2d:
    """Narrow an ungrouped Conv2d in place to output channels `out_idx` and input
    channels `in_idx` (None: all)."""
    if layer.groups != 1:
        raise ValueError(f"cannot narrow a grouped convolution (groups={layer.groups})")
    return _narrow_weights(layer, out_idx, in_idx, "out_channels", "in_channels")


def narrow_batchnorm(
    layer: nn.modules.batchnorm._BatchNorm, idx: torch.Tensor
) -> nn.modules.batchnorm._BatchNorm:
    """Narrow a BatchNorm in place to features `idx`: affine weights and running
    statistics (its eps, momentum and hooks, e.g. a warm start, stay as they were)."""
    for key in ("weight", "bias", "running_mean", "running_var"):
        _narrow(layer, key, idx, 0)
    layer.num_features = len(idx)
    return layer


def width(module: nn.Module) -> int:
    """Output units of a Linear or conv layer."""
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def keep_units(model: nn.Module, chain: Chain, keep: torch.Tensor) -> None:
    """Narrow `chain` in place to the units `keep` (sorted indices into its current
    units): the producer's outputs, the per-unit norms after it and the consumer's
    matching inputs (H·W of them per channel after a flatten)."""
    producer = model.get_submodule(chain.producer)
    keep = keep.to(device=producer.weight.device, dtype=torch.long).sort().values
    n_units = width(producer)
    if isinstance(producer, nn.Linear):
        narrow_linear(producer, rows=keep)
    else:
        narrow_conv(producer, out_idx=keep)
    for name in chain.followers:
        m = model.get_submodule(name)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            narrow_batchnorm(m, keep)
    if chain.consumer is None:
        return
    consumer = model.get_submodule(chain.consumer)
    if isinstance(consumer, nn.Conv2d):
        narrow_conv(consumer, in_idx=keep)
        return
    per_unit, rest = divmod(consumer.in_features, n_units)
    if rest:
        raise ValueError(
            f"'{chain.consumer}' reads {consumer.in_features} inputs, not a multiple of "
            f"the {n_units} units of '{chain.producer}'"
        )
    cols = (keep[:, None] * per_unit + torch.arange(per_unit, device=keep.device)).flatten()
    narrow_linear(consumer, cols=cols)


@dataclass
class Iteration:
    """What `prune_iteratively` returns: the chosen model and every step's record.

    Args:
        model: the last model that met the target (the best-scoring one if none did).
        steps: per step: amount reached, the widths, the score, whether it met the target.
        chosen: the 1-based step `model` comes from.
        reached: whether `model` is the final step (the whole amount) within the target.
    """

    model: nn.Module
    steps: list[dict[str, Any]] = field(default_factory=list)
    chosen: int = 0
    reached: bool = False


def prune_iteratively(
    model: nn.Module,
    amount: float,
    ctx: CompressContext,
    options: MethodOptions,
    prune_step: Callable[[nn.Module, int, float], None],
    widths: Callable[[nn.Module], dict[str, int]],
) -> Iteration:
    """Prune `model` in place towards `amount` in `options.steps` equal steps: each
    step calls `prune_step(model, step, fraction_so_far)`, fine-tunes and scores on the
    selection split; the loop stops at the first step whose score misses the target.
    Returns a copy of the last step that met it (or of the best step if none did)."""
    steps = max(1, int(options.steps))
    records: list[dict[str, Any]] = []
    good = best = None
    for k in range(1, steps + 1):
        fraction = amount * k / steps
        prune_step(model, k, fraction)
        ctx.finetune(model, options.finetune_epochs, lr_factor=options.lr_factor)
        model.eval()
        score = ctx.score(model)
        met = ctx.meets_target(score)
        records.append(
            {
                "step": k,
                "amount": round(fraction, 6),
                "widths": widths(model),
                "score": score,
                "met_target": met,
            }
        )
        ctx.progress(
            f"step {k}/{steps}: {fraction:.0%} pruned, {ctx.selection_split} "
            f"score {score:.4f}{'' if met else ' (misses the target)'}"
        )
        snapshot = copy.deepcopy(model)
        if met:
            good = (snapshot, k)
        if best is None or score > records[best[1] - 1]["score"]:
            best = (snapshot, k)
        if not met:
            break
    chosen, k = good or best
    return Iteration(chosen, records, k, good is not None and k == steps)


def unpruned_model(ctx: CompressContext) -> nn.Module:
    """The recipe's architecture at its full size (the `compression.shapes` of an
    already compressed source left out), freshly initialised, without touching the
    global random state."""
    recipe = ctx.prepared.recipe.model_copy(update={"compression": None})
    with torch.random.fork_rng(devices=[]):
        return dataclasses.replace(ctx.prepared, recipe=recipe).build_model().eval()


def verify_rebuild(model: nn.Module, ctx: CompressContext, x: torch.Tensor) -> Shapes:
    """Check that the pruned `model` runs on `x` and that the recipe's model resized by
    its changed shapes (`models/structure.py`) and loaded with its weights gives the
    same outputs; returns those shapes. A RuntimeError names what differs (a bug)."""
    reference = unpruned_model(ctx)
    shapes = changed_shapes(model, reference)
    try:
        apply_shapes(reference, shapes)
        reference.load_state_dict(model.state_dict())
    except (ValueError, RuntimeError) as exc:
        raise RuntimeError(f"the pruned model cannot be rebuilt from its shapes: {exc}") from exc
    model.eval()
    reference.eval()
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    if not torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6):
        diff = float((ours - theirs).abs().max())
        raise RuntimeError(f"the model rebuilt from the pruned shapes differs by {diff:.3g}")
    return shapes


def calibration(ctx: CompressContext, options: MethodOptions) -> list:
    """The first `options.calibration_batches` training batches (unshuffled)."""
    rows = options.calibration_batches * ctx.prepared.recipe.train.eval_batch_size
    return list(itertools.islice(ctx.train_batches(rows), options.calibration_batches))


def check_amount(method: str, amount: float | None) -> float:
    """`amount` as a share of units in (0, 1), or a RecipeError saying so."""
    if amount is None or not 0 < float(amount) < 1:
        raise RecipeError(
            f"{method} needs the share of units to remove in (0, 1), e.g. {method}:0.5 "
            f"(got {amount})"
        )
    return float(amount)


_ARCHS = {
    "neurons": ("dense", ("mlp", "cnn", "vgg_small")),
    "channels": ("conv", ("cnn", "vgg_small")),
}


def _select(method: str, model: nn.Module, ctx: CompressContext) -> tuple[list[Chain], list[str]]:
    """The chains `method` narrows and a note for each hidden layer it leaves whole."""
    arch = ctx.prepared.recipe.model.name
    kind, archs = _ARCHS[method]
    if arch not in archs:
        hint = (
            "an mlp has no channels; use neurons"
            if arch == "mlp"
            else "use structured, which prunes any architecture with Torch-Pruning"
        )
        raise RecipeError(
            f"{method} pruning works on {', '.join(archs)}, not model '{arch}'; {hint}"
        )
    chains = [c for c in unit_chains(model) if c.kind == kind]
    whole = [f"'{c.producer}' kept whole: {c.blocker}." for c in chains if c.blocker]
    usable = [c for c in chains if c.blocker is None]
    if not usable:
        what = (
            " ".join(whole) or f"it has no hidden {'dense' if kind == 'dense' else 'conv'} layer."
        )
        raise RecipeError(
            f"{method}: nothing in this {arch} can be narrowed ({what}); "
            "use structured or magnitude"
        )
    return usable, whole


def _build(
    method: str,
    model: nn.Module,
    amount: float | None,
    ctx: CompressContext,
    options: MethodOptions,
) -> MethodResult:
    """`neurons` or `channels`: rank by activations, narrow, fine-tune, repeat."""
    amount = check_amount(method, amount)
    model = copy.deepcopy(model).eval()
    chains, whole = _select(method, model, ctx)
    before = {c.producer: width(model.get_submodule(c.producer)) for c in chains}

    def widths(m: nn.Module) -> dict[str, int]:
        return {c.producer: width(m.get_submodule(c.producer)) for c in chains}

    def prune_step(m: nn.Module, step: int, fraction: float) -> None:
        """Rank the current units and keep the best of each layer's original width."""
        scores = hidden_unit_scores(m, calibration(ctx, options), options.score, chains)
        for c in chains:
            target = max(1, round(before[c.producer] * (1 - fraction)))
            if len(scores[c.producer]) > target:
                order = torch.sort(scores[c.producer], descending=True, stable=True).indices
                keep_units(m, c, order[:target])

    run = prune_iteratively(model, amount, ctx, options, prune_step, widths)
    x = next(iter(ctx.train_batches(8)))[0]
    verify_rebuild(run.model, ctx, x)
    after = widths(run.model)
    layers = {n: {"before": before[n], "after": after[n]} for n in before}
    details = {
        "layers": layers,
        "score": options.score,
        "steps": run.steps,
        "chosen_step": run.chosen,
        "reference_score": ctx.reference_val,
        "amount_reached": run.steps[run.chosen - 1]["amount"],
    }
    notes = [
        f"{method}: a smaller dense model ("
        + ", ".join(f"{n} {before[n]} → {after[n]}" for n in before)
        + " units); it is faster as it is, without sparse kernels, and is saved as "
        "the recipe with those layers narrower.",
        f"Units were ranked by {_SCORE_WORDS[options.score]} over "
        f"{options.calibration_batches} training batches.",
        *whole,
    ]
    notes += target_notes(run, amount, ctx)
    return MethodResult(run.model, f"{method}:{amount:g}", details, notes, met_target=run.reached)


_SCORE_WORDS = {
    "apoz": "APoZ (share of zero activations, Hu et al. 2016)",
    "mean": "mean absolute activation",
}


def target_notes(run: Iteration, amount: float, ctx: CompressContext) -> list[str]:
    """What the accuracy target did to the iterative schedule, in words."""
    chosen = run.steps[run.chosen - 1]
    if run.reached:
        return []
    if not any(s["met_target"] for s in run.steps):
        return [
            f"No step stayed within {ctx.target_drop} of the source's "
            f"{ctx.reference_val:.4f}; this is the best step found ({chosen['amount']:.0%} "
            f"pruned, {chosen['score']:.4f})."
        ]
    failed = run.steps[-1]
    return [
        f"The target stopped pruning at {chosen['amount']:.0%} of the {amount:.0%} asked: "
        f"{failed['amount']:.0%} scored {failed['score']:.4f}, below "
        f"{ctx.reference_val - (ctx.target_drop or 0):.4f}."
    ]


@METHODS.register(
    "neurons",
    description="remove the least active hidden units of dense layers (APoZ or mean "
    "activation): a smaller dense mlp, or a narrower dense head of cnn / vgg_small",
)
def build_neurons(
    model: nn.Module, amount: float | None, ctx: CompressContext, options: MethodOptions
) -> MethodResult:
    """Neuron pruning by activation (seed 001): each hidden dense layer loses `amount`
    of its units, the output layer none; mixture-of-experts layers are kept whole."""
    return _build("neurons", model, amount, ctx, options)


@METHODS.register(
    "channels",
    description="remove the least active conv channels of cnn / vgg_small (APoZ or mean "
    "activation): a narrower, faster CNN",
)
def build_channels(
    model: nn.Module, amount: float | None, ctx: CompressContext, options: MethodOptions
) -> MethodResult:
    """Channel pruning by activation: each conv layer loses `amount` of its channels
    (its norm's and the next layer's matching inputs with them); dense layers are left
    to `neurons`, grouped convolutions are kept whole."""
    return _build("channels", model, amount, ctx, options)
