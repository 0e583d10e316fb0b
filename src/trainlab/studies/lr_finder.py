"""Learning-rate range test (Smith 2017), repeated over seeds because one run is unreliable.

From a fresh model, the learning rate grows exponentially from `start` to `end` over
`steps` mini-batches while the (smoothed) training loss is recorded; the test stops
early once the loss exceeds `stop_factor` × its best. Two suggestions per seed, as
fastai names them: `steepest` (where the loss falls fastest against log lr) and
`minimum_div_10` (the lr of the lowest loss, divided by 10). Single runs move these by
several-fold from seed to seed, so `lr_find` repeats the test and reports the geometric
mean and the spread (max/min ratio) of each suggestion.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.config.loading import RecipeLike, load_recipe
from trainlab.errors import RecipeError
from trainlab.fileio import atomic_write_text


@dataclass
class LRCurve:
    """One seed's range test."""

    seed: int
    lrs: list[float]
    losses: list[float]  # smoothed
    steepest: float | None
    minimum: float | None  # lr of the lowest smoothed loss
    diverged_at: float | None  # lr where the loss passed stop_factor × best (None: never)

    @property
    def informative(self) -> bool:
        """Whether the loss fell at least 5 % below its start (else the test says nothing)."""
        return bool(self.losses) and min(self.losses) < 0.95 * self.losses[0]

    @property
    def minimum_div_10(self) -> float | None:
        """fastai's 'minimum / 10' suggestion."""
        return None if self.minimum is None else self.minimum / 10


@dataclass
class LRFindResult:
    """The range tests of every seed and the suggestions with their spread."""

    recipe_lr: float
    curves: list[LRCurve]
    suggestions: dict[str, dict[str, Any]] = field(default_factory=dict)
    plot: str | None = None
    #: False when most seeds' loss never fell: the suggestions then mean nothing.
    informative: bool = True

    def suggestion(self, name: str = "steepest") -> float | None:
        """Geometric mean over seeds of a suggestion ('steepest', 'minimum_div_10', 'minimum')."""
        return self.suggestions.get(name, {}).get("geomean")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (curves included)."""
        return {
            "recipe_lr": self.recipe_lr,
            "informative": self.informative,
            "suggestions": self.suggestions,
            "plot": self.plot,
            "curves": [{**asdict(c), "minimum_div_10": c.minimum_div_10} for c in self.curves],
        }


def _suggest(lrs: list[float], losses: list[float]) -> tuple[float | None, float | None]:
    if len(losses) < 5:
        return None, None
    loss = np.asarray(losses)
    i_min = int(np.argmin(loss))
    minimum = lrs[i_min]
    if i_min < 2:
        return None, minimum
    # Slope over a few points either side (single-step slopes are mostly noise), and not
    # in the first 5 % of the curve, where the loss has not started to move.
    log_lr = np.log10(lrs)
    w = max(1, len(loss) // 25)
    first = max(w, len(loss) // 20)
    idx = np.arange(first, max(first + 1, i_min - w + 1))
    idx = idx[idx + w < len(loss)]
    if len(idx) == 0:
        return None, minimum
    slope = (loss[idx + w] - loss[idx - w]) / (log_lr[idx + w] - log_lr[idx - w])
    return lrs[int(idx[np.argmin(slope)])], minimum


def range_test(
    recipe: Any,
    seed: int,
    start: float,
    end: float,
    steps: int,
    smoothing: float = 0.9,
    stop_factor: float = 4.0,
    cache: dict | None = None,
) -> LRCurve:
    """One range test of a validated recipe with `seed` (the recipe's data, model, loss)."""
    from trainlab.engine import determinism
    from trainlab.optim.optimizers import build_optimizer
    from trainlab.prepare import prepare

    t = recipe.train
    cache = cache if cache is not None else {}
    if "prepared" not in cache:
        cache["prepared"] = prepare(recipe, determinism.resolve_device(t.device))
    prepared = cache["prepared"]
    determinism.seed_everything(seed)
    model = prepared.build_model()
    loss_fn = prepared.build_loss()
    optimizer = build_optimizer(
        model, t.optimizer.name, t.optimizer.params, start, t.weight_decay, t.decay_norm_and_bias
    )
    batches = prepared.batches("train", shuffle=True, seed=seed)
    model.train()
    lrs, losses = [], []
    avg, best, diverged = 0.0, math.inf, None
    factor = (end / start) ** (1 / max(1, steps - 1))
    step, epoch = 0, 0
    while step < steps:
        batches.set_epoch(epoch)
        for x, y in batches:
            lr = start * factor**step
            for g in optimizer.param_groups:
                g["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                diverged = lr
                break
            loss.backward()
            optimizer.step()
            avg = smoothing * avg + (1 - smoothing) * value
            smooth = avg / (1 - smoothing ** (step + 1))
            lrs.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            step += 1
            if smooth > stop_factor * best and step > 10:
                diverged = lr
                break
            if step >= steps:
                break
        if diverged is not None:
            break
        epoch += 1
    steepest, minimum = _suggest(lrs, losses)
    return LRCurve(seed, lrs, losses, steepest, minimum, diverged)


def _spread(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and v > 0]
    if not vals:
        return {"values": values, "geomean": None, "spread": None}
    logs = np.log10(vals)
    return {
        "values": values,
        "geomean": float(10 ** logs.mean()),
        "min": float(min(vals)),
        "max": float(max(vals)),
        "spread": float(max(vals) / min(vals)),  # max/min ratio across seeds
        "log10_std": float(logs.std(ddof=1)) if len(vals) > 1 else 0.0,
    }


def lr_find(
    recipe: RecipeLike,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    seeds: int = 3,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    out: str | Path | None = None,
) -> LRFindResult:
    """Run the range test over `seeds` seeds; write lr_find.json and lr_find.png to `out`."""
    if not 0 < start < end:
        raise RecipeError(f"lr-find: need 0 < start < end (got start={start}, end={end})")
    if seeds < 1 or steps < 10:
        raise RecipeError("lr-find: need --seeds >= 1 and --steps >= 10")
    r = load_recipe(recipe, overrides)
    cache: dict[str, Any] = {}
    curves = [range_test(r, r.train.seed + i, start, end, steps, cache=cache) for i in range(seeds)]
    result = LRFindResult(r.train.lr, curves)
    # A curve whose loss never falls (a broken model) has no meaningful minimum.
    used = [c for c in curves if c.informative]
    result.suggestions = {
        "steepest": _spread([c.steepest for c in used]),
        "minimum_div_10": _spread([c.minimum_div_10 for c in used]),
        "minimum": _spread([c.minimum for c in used]),
    }
    result.informative = len(used) * 2 > len(curves)
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        result.plot = str(plot_lr_find(result, folder / "lr_find.png"))
        atomic_write_text(folder / "lr_find.json", json.dumps(result.to_dict(), indent=1))
    return result


def plot_lr_find(result: LRFindResult, path: Path) -> Path:
    """PNG: smoothed loss against learning rate per seed, suggestions and the recipe's lr."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in result.curves:
        ax.plot(c.lrs, c.losses, label=f"seed {c.seed}", alpha=0.8)
    styles = {"steepest": ("tab:green", "--"), "minimum_div_10": ("tab:orange", ":")}
    for name, (color, ls) in styles.items():
        value = result.suggestion(name)
        if value:
            ax.axvline(value, color=color, ls=ls, label=f"{name} {value:.2g}")
    ax.axvline(result.recipe_lr, color="black", lw=0.8, label=f"recipe lr {result.recipe_lr:g}")
    ax.set_xscale("log")
    losses = [v for c in result.curves for v in c.losses]
    if losses:
        low = min(losses)
        first = max(c.losses[0] for c in result.curves if c.losses)
        ax.set_ylim(low - 0.05 * abs(low), max(first, low) * 1.5 + 1e-3)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.set_title("LR range test")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
