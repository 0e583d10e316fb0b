"""The honest baseline: the compressed architecture trained from scratch.

Blalock et al. (MLSys 2020) found most pruning papers never ask whether the pruned model
beats simply training the smaller architecture. `versus_scratch` trains the compressed
run's recipe (its pruned shapes, initialised as the recipe initialises, no quantization)
from scratch with the source recipe's training over N seeds, and compares the test
accuracy of the compressed model with theirs: the mean difference and its 95 % t-interval
(trainlab/stats.py, as ablate reports effects). The scratch runs live under
`<compressed run>/scratch/seed-K`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.config.loading import load_recipe
from trainlab.store.rundir import RunDir


def verdict(ci_low: float, ci_high: float) -> str:
    """Which one won, from the interval of (compressed − scratch)."""
    if ci_low > 0:
        return "the compressed model wins"
    if ci_high < 0:
        return "training from scratch wins"
    return "no significant difference"


def versus_scratch(
    compressed_dir: Path,
    compressed_score: float,
    seeds: int,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Train the compressed architecture from scratch over `seeds` seeds and compare."""
    from trainlab import runs
    from trainlab.stats import summarize

    recipe = load_recipe(RunDir(compressed_dir).recipe)
    section = recipe.compression.model_copy(update={"quantize": "none"})
    recipe = recipe.model_copy(update={"compression": section})
    scores = []
    for seed in range(seeds):
        progress(f"from scratch, seed {seed + 1}/{seeds}")
        run = runs.train(recipe, [f"train.seed={seed}"],
                         out=Path(compressed_dir) / "scratch" / f"seed-{seed}",
                         study=f"scratch:{Path(compressed_dir).name}")  # fmt: skip
        scores.append(float(run.metrics.get("test_accuracy", run.metrics.get("test_r2", 0.0))))
    diff = summarize([compressed_score - s for s in scores])
    scratch = summarize(scores)
    return {
        "seeds": seeds,
        "scratch_test": scores,
        "scratch": scratch.to_dict(),
        "compressed_test": compressed_score,
        "difference": diff.to_dict(),
        "verdict": verdict(diff.ci_low, diff.ci_high) if seeds > 1 else "not enough seeds",
        "epochs_scratch": recipe.train.epochs,
    }
