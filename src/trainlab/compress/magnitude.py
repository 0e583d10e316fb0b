"""`magnitude` and `threshold`: zero the smallest weights, retrain, check the score.

`magnitude:S` reaches sparsity S (the share of Linear/Conv weights that are zero; biases,
norms and the output layer are left whole, see `masks`) in `steps` prune-retrain rounds,
the seed's loop: prune to the round's sparsity, fine-tune `finetune_epochs` with the
pruned weights held at zero, score on the selection split, keep a copy if the score is
within `target_drop` of the source's, and stop at the first round that is not — the
model returned is then the last one that met the target.

The rounds follow the cubic schedule of Zhu & Gupta 2017 ("To prune, or not to prune"),
the field's default: s_t = S + (s_0 − S)(1 − t/n)³ for t = 1…n, from the model's current
sparsity s_0. It prunes most in the first rounds, while many weights are redundant, and
least in the last, when the network has the fewest weights left to absorb the loss:
for S = 0.9 in 3 rounds, 63 %, 87 %, 90 %.

`threshold:T` zeroes every weight with |w| < T in one shot, then fine-tunes once.

Zeros in a dense tensor save nothing: the notes say so, with what `sparse` measured for
a CSR product on this CPU.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from torch import nn

from trainlab.compress.context import CompressContext, MethodResult
from trainlab.compress.masks import (
    KeepMasks,
    Masks,
    apply_masks,
    magnitude_masks,
    output_layer,
    prunable_weights,
    sparsity_report,
    threshold_masks,
)
from trainlab.compress.methods import METHODS, MethodOptions
from trainlab.compress.sparse import measure_sparse
from trainlab.errors import RecipeError

SCHEDULE = "cubic (Zhu & Gupta 2017)"
DENSE_NOTE = (
    "Masked weights are zeros stored in a dense file: they make the file smaller only when "
    "it is stored sparse (or compressed), and make nothing faster on their own; the MACs "
    "and latency are those of the unpruned model."
)


def cubic_schedule(start: float, target: float, steps: int) -> list[float]:
    """The sparsity after each of `steps` rounds from `start` to `target` (Zhu & Gupta
    2017): target + (start − target)(1 − t/steps)³; the last is `target` exactly."""
    return [target + (start - target) * (1 - t / steps) ** 3 for t in range(1, steps + 1)]


def current_sparsity(model: nn.Module) -> float:
    """The share of zeros among the weights magnitude pruning may zero."""
    weights = list(prunable_weights(model).values())
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


def _prune_round(
    model: nn.Module,
    masks: Masks,
    ctx: CompressContext,
    options: MethodOptions,
    label: str,
) -> dict[str, Any]:
    """Apply `masks`, fine-tune with them held, score: the round's record."""
    apply_masks(model, masks)
    ctx.finetune(model, options.finetune_epochs, extra=[KeepMasks(masks)],
                 lr_factor=options.lr_factor)  # fmt: skip
    score = ctx.score(model)
    met = ctx.meets_target(score)
    sparsity = sparsity_report(model, masks)["overall"]["sparsity"]
    verdict = "" if ctx.target_drop is None else (" meets" if met else " misses") + " the target"
    ctx.progress(
        f"{label}: sparsity {sparsity:.1%}, {ctx.selection_split} score {score:.4f} "
        f"(source {ctx.reference_val:.4f}){verdict}"
    )
    return {"sparsity": sparsity, "score": score, "met_target": met}


def _kernel_note(kernels: dict[str, dict[str, Any]]) -> str:
    """One sentence on what the CSR timing found."""
    if not kernels:
        return (
            "No pruned Linear layer to time a sparse (CSR) product for; "
            "torch has no CSR convolution."
        )
    first = next(iter(kernels.values()))
    faster = [name for name, row in kernels.items() if row["faster"]]
    rows = "; ".join(
        f"{name} {row['shape'][0]}x{row['shape'][1]} at {row['sparsity']:.0%}: dense "
        f"{row['dense_ms']:.3f} ms, CSR {row['sparse_ms']:.3f} ms"
        for name, row in kernels.items()
    )
    return (
        f"A CSR sparse product on this CPU (batch {first['batch']}, {first['threads']} "
        f"threads) was faster than the dense one for {len(faster)} of {len(kernels)} pruned "
        f"Linear layers ({rows})."
    )


def _measure_kernels(model: nn.Module, masks: Masks) -> tuple[dict[str, Any], str]:
    try:
        kernels = measure_sparse(model, masks, batch=256)
    except (RuntimeError, NotImplementedError) as exc:  # a torch build without CSR kernels
        return {}, f"The sparse (CSR) product could not be timed here: {exc}."
    return kernels, _kernel_note(kernels)


def _result(
    model: nn.Module,
    method: str,
    masks: Masks,
    rounds: list[dict[str, Any]],
    met_target: bool,
    extra: dict[str, Any],
    notes: list[str],
) -> MethodResult:
    """The MethodResult of a pruned `model`: its sparsity per layer, the rounds, notes."""
    report = sparsity_report(model, masks)
    kernels, kernel_note = _measure_kernels(model, masks)
    details = {
        **extra,
        "steps": rounds,
        "sparsity": report["overall"]["sparsity"],
        "layers": report["layers"],
        "model_zeros": report["model"],
        "excluded": [output_layer(model)],
        "sparse_kernels": kernels,
    }
    return MethodResult(model, method, details, [DENSE_NOTE, *notes, kernel_note], masks,
                        met_target)  # fmt: skip


def _stop_note(rounds: list[dict[str, Any]], kept: int | None, ctx: CompressContext) -> str:
    """Why the rounds stopped short, and which model is returned."""
    last = rounds[-1]
    why = (
        f"Stopped at step {len(rounds)}: sparsity {last['sparsity']:.1%} scored "
        f"{last['score']:.4f} on {ctx.selection_split}, more than {ctx.target_drop} below "
        f"the source's {ctx.reference_val:.4f}"
    )
    if kept is None:
        return why + "; no step met the target, so the model returned (that step's) misses it."
    return why + (
        f"; the model returned is step {kept}'s, the last that met the target "
        f"(sparsity {rounds[kept - 1]['sparsity']:.1%})."
    )


@METHODS.register(
    "magnitude",
    description="zero the smallest-|w| Linear/Conv weights to sparsity AMOUNT in (0, 1), "
    "iteratively (steps, cubic schedule), fine-tuning with them held at zero",
    amount="sparsity in (0, 1)",
    kind="prune",
)
def build_magnitude(
    model: nn.Module, amount: float | None, ctx: CompressContext, options: MethodOptions
) -> MethodResult:
    """Iterative magnitude pruning to sparsity `amount` (module docstring). `model` is
    changed in place; the model returned is it or a copy taken at an earlier round."""
    if amount is None or not 0 < amount < 1:
        raise RecipeError(
            f"magnitude: amount must be a sparsity between 0 and 1 (got {amount}), "
            "e.g. magnitude:0.9"
        )
    start = current_sparsity(model)
    targets = cubic_schedule(start, amount, options.steps) if start < amount else [amount]
    rounds: list[dict[str, Any]] = []
    kept: tuple[nn.Module, Masks, int] | None = None
    for i, target in enumerate(targets, 1):
        masks = magnitude_masks(model, target, options.scope)
        record = _prune_round(model, masks, ctx, options, f"magnitude step {i}/{len(targets)}")
        rounds.append({"step": i, "target_sparsity": target, **record})
        if not record["met_target"]:
            break
        kept = (model if i == len(targets) else copy.deepcopy(model), masks, i)
    reached = len(rounds) == len(targets) and rounds[-1]["met_target"]
    best, best_masks, notes = model, masks, []
    if not reached:
        if kept is not None:
            best, best_masks = kept[0], kept[1]
        notes.append(_stop_note(rounds, None if kept is None else kept[2], ctx))
    extra = {
        "target_sparsity": amount,
        "start_sparsity": start,
        "scope": options.scope,
        "schedule": SCHEDULE,
        "finetune_epochs": options.finetune_epochs,
        "returned_step": len(rounds) if kept is None else kept[2],
        "returned_meets_target": kept is not None,
        **_reference(ctx),
    }
    return _result(best, f"magnitude:{amount:g}", best_masks, rounds, reached, extra, notes)


def _reference(ctx: CompressContext) -> dict[str, Any]:
    return {
        "selection_split": ctx.selection_split,
        "reference_score": ctx.reference_val,
        "target_drop": ctx.target_drop,
    }


@METHODS.register(
    "threshold",
    description="zero every Linear/Conv weight with |w| < AMOUNT in one shot, then fine-tune",
    amount="threshold |w| > 0",
    kind="prune",
)
def build_threshold(
    model: nn.Module, amount: float | None, ctx: CompressContext, options: MethodOptions
) -> MethodResult:
    """One-shot threshold pruning then one fine-tuning (`steps` does not apply). In place."""
    if amount is None or not amount > 0 or math.isinf(amount):
        raise RecipeError(
            f"threshold: amount must be a positive weight magnitude (got {amount}), "
            "e.g. threshold:0.01"
        )
    masks = threshold_masks(model, amount)
    for name, mask in masks.items():
        if not mask.any():
            largest = float(prunable_weights(model)[name].detach().abs().max())
            raise RecipeError(
                f"threshold: {amount:g} would zero every weight of '{name}' (its largest "
                f"|w| is {largest:.4g}); give a smaller threshold"
            )
    record = _prune_round(model, masks, ctx, options, "threshold")
    rounds = [{"step": 1, "threshold": amount, **record}]
    notes = [] if record["met_target"] else [_stop_note(rounds, None, ctx)]
    if options.steps > 1:
        notes.append("threshold pruning is one shot: steps does not apply to it.")
    extra = {"threshold": amount, "finetune_epochs": options.finetune_epochs, **_reference(ctx)}
    return _result(model, f"threshold:{amount:g}", masks, rounds, record["met_target"], extra,
                   notes)  # fmt: skip
