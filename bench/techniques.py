"""Techniques on the MNIST CNN: time per training step, bf16 speed-up, accuracy table.

    python bench/techniques.py [speed|bf16|accuracy|all] [--steps N] [--epochs E] [--threads T]

- speed: every registered technique's time per training step relative to no technique,
  measured on the same steps of the MNIST CNN (steps 10..N of epoch 1; the first ones
  warm up) as CPU time of this process, in back-to-back pairs with the baseline (fastest
  of `repeats` each), so the ratio survives load drifting during the run.
- bf16: the whole MNIST CNN recipe in float32 and under `mixed_precision: bf16`: seconds
  per epoch, speed-up, test accuracy of each.
- accuracy: the recipe with dropout, batch norm, label smoothing, mixup and EMA each
  turned on in turn against a plain CNN (one seed; `trainlab ablate` does it over seeds).

The MNIST CNN is examples/mnist_cnn_bn.yaml when it exists, else seed 003 §4.2's network
written inline (conv 32 → BN → max-pool → conv 64 → BN → max-pool → dense 64 → BN →
dense 10; Adam; batch 32; 5 epochs). Prints tables to stderr and one JSON line last.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import trainlab
from trainlab.config.loading import read_yaml
from trainlab.engine import StopFit, StopReason, Technique

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist_cnn_bn.yaml"
INLINE = {
    "name": "mnist_cnn_bn",
    "data": {"dataset": "mnist"},
    "model": {
        "name": "cnn",
        "channels": [32, 64],
        "norm": "batch",
        "pool": "max",
        "dense": [64],
        "dense_norm": True,
    },
    "train": {"epochs": 5, "batch_size": 32, "lr": 0.001, "optimizer": "adam", "seed": 0},
}

#: Parameters used when timing each technique (defaults otherwise).
SPEED_PARAMS = {
    "freeze": {"layers": ["0.*"]},
    "swa": {"start": "0ep"},
    "early_stopping": {"patience": 100},
    "grad_accumulation": {"steps": 4},
}
#: Techniques that cannot act on this model or data, with the reason.
NOT_APPLICABLE = {
    "stochastic_depth": "needs residual branches (resnet)",
    "token_dropout": "text only",
}


def base_recipe(threads: int) -> dict:
    """The MNIST CNN recipe as a dict."""
    recipe = read_yaml(EXAMPLE) if EXAMPLE.is_file() else copy.deepcopy(INLINE)
    recipe.setdefault("train", {})["threads"] = threads
    recipe["techniques"] = []
    return recipe


class StepTimer(Technique):
    """Times training steps `warmup`..`steps` of the first epoch, then ends the fit.

    It measures the process's CPU time, not wall time: on a machine shared with other
    jobs, waiting for a core inflates wall time but not CPU time (with 1 torch thread
    the two agree on a quiet machine).
    """

    order = 10_000  # after every technique's BATCH_END work

    def __init__(self, steps: int, warmup: int = 10) -> None:
        self.steps, self.warmup = steps, warmup
        self.started = 0.0
        self.seconds_per_step = float("nan")

    def on_batch_start(self, state) -> None:
        if state.batch_index == self.warmup:
            self.started = time.process_time()

    def on_batch_end(self, state) -> None:
        if state.batch_index + 1 == self.steps:
            elapsed = time.process_time() - self.started
            self.seconds_per_step = elapsed / (self.steps - self.warmup)
            raise StopFit(StopReason.TIME_LIMIT, "benchmark steps done")


def time_steps(recipe: dict, steps: int, out: Path) -> float:
    """Seconds per training step of `recipe` (median-free: one measured stretch)."""
    timer = StepTimer(steps)
    trainlab.train(recipe, ["train.epochs=1"], out=out, extra_techniques=[timer])
    return timer.seconds_per_step


def speed(threads: int, steps: int, work: Path, repeats: int = 2) -> dict:
    """Time per step of every technique relative to none, measured in pairs.

    For each technique, `repeats` pairs (no technique, then the technique) are timed back
    to back; its ratio is fastest-with / fastest-without of its own pairs, so a change in
    machine load between techniques does not leak into the ratios.
    """
    from trainlab.catalog import TECHNIQUES

    base = base_recipe(threads)
    names = [n for n in TECHNIQUES.names() if n not in NOT_APPLICABLE]
    ratios: dict[str, float] = {}
    per_step: dict[str, float] = {}
    baselines: list[float] = []
    for name in names:
        recipe = copy.deepcopy(base)
        recipe["techniques"] = [{"name": name, **SPEED_PARAMS.get(name, {})}]
        if name == "dropout":  # the technique controls dropout layers; build them
            recipe["model"]["dropout"] = 0.25
        without, with_ = [], []
        for r in range(repeats):
            without.append(time_steps(base, steps, work / f"none-{name}-{r}"))
            with_.append(time_steps(recipe, steps, work / f"{name}-{r}"))
        baselines += without
        per_step[name] = min(with_)
        ratios[name] = round(min(with_) / min(without), 3)
        print(
            f"  {name:18s} {per_step[name] * 1e3:8.2f} ms/step  x{ratios[name]:.3f}",
            file=sys.stderr,
        )
    print(f"{'technique':18s} {'x none':>8s}", file=sys.stderr)
    for n, r in sorted(ratios.items(), key=lambda kv: kv[1]):
        print(f"{n:18s} {r:8.3f}", file=sys.stderr)
    return {
        "baseline_ms_per_step_min": round(min(baselines) * 1e3, 3),
        "baseline_ms_per_step_max": round(max(baselines) * 1e3, 3),
        "ms_per_step": {n: round(t * 1e3, 3) for n, t in per_step.items()},
        "relative_time_per_step": ratios,
        "not_applicable": NOT_APPLICABLE,
        "steps_timed": steps - 10,
        "repeats": repeats,
    }


def full_run(recipe: dict, out: Path, overrides: list[str] | None = None) -> dict:
    """Train to the end; accuracy and seconds per epoch."""
    run = trainlab.train(recipe, overrides or [], out=out)
    return {
        "val_accuracy": round(run.metrics["val_accuracy"], 4),
        "test_accuracy": round(run.metrics["test_accuracy"], 4),
        "seconds_per_epoch": run.info["timings"]["seconds_per_epoch"],
        "epochs": run.info["epochs_completed"],
    }


def cpu_bf16_flags() -> list[str]:
    """The CPU's bfloat16 instruction-set flags (Linux), e.g. avx512_bf16, amx_bf16."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return sorted({f for f in flags.split() if "bf16" in f})


def bf16(threads: int, epochs: int | None, work: Path) -> dict:
    """float32 against bf16 autocast on the whole recipe."""
    base = base_recipe(threads)
    sets = [f"train.epochs={epochs}"] if epochs else []
    fp32 = full_run(base, work / "fp32", sets)
    recipe = copy.deepcopy(base)
    recipe["techniques"] = [{"name": "mixed_precision", "dtype": "bf16"}]
    half = full_run(recipe, work / "bf16", sets)
    result = {
        "fp32": fp32,
        "bf16": half,
        "speedup": round(fp32["seconds_per_epoch"] / half["seconds_per_epoch"], 3),
        "cpu_bf16_flags": cpu_bf16_flags(),
    }
    print(json.dumps(result, indent=1), file=sys.stderr)
    return result


def accuracy(threads: int, epochs: int | None, work: Path) -> dict:
    """A plain CNN, then dropout, batch norm, label smoothing, mixup, EMA each alone; then
    batch norm with `precise_bn` (the example recipe)."""
    plain = base_recipe(threads)
    plain["model"].update(norm="none", dense_norm=False, dropout=0.0)
    variants: dict[str, dict] = {"plain": plain}
    for name, change in {
        "dropout": lambda r: r["model"].update(dropout=0.25),
        "batch_norm": lambda r: r["model"].update(norm="batch", dense_norm=True),
        "label_smoothing": lambda r: r["techniques"].append(
            {"name": "label_smoothing", "smoothing": 0.1}
        ),
        "mixup": lambda r: r["techniques"].append({"name": "mixup", "alpha": 0.2}),
        "ema": lambda r: r["techniques"].append({"name": "ema", "decay": 0.999}),
        # batch norm with its statistics recomputed before evaluating (= the example recipe)
        "batch_norm+precise_bn": lambda r: (
            r["model"].update(norm="batch", dense_norm=True),
            r["techniques"].append({"name": "precise_bn"}),
        ),
    }.items():
        recipe = copy.deepcopy(plain)
        change(recipe)
        variants[name] = recipe
    sets = [f"train.epochs={epochs}"] if epochs else []
    table = {}
    for name, recipe in variants.items():
        table[name] = full_run(recipe, work / f"acc-{name}", sets)
        print(f"  {name:16s} {table[name]}", file=sys.stderr)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "part", nargs="?", default="all", choices=["speed", "bf16", "accuracy", "all"]
    )
    parser.add_argument("--steps", type=int, default=60, help="steps per timing (first 10 warm up)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict = {
        "recipe": str(EXAMPLE) if EXAMPLE.is_file() else "inline seed-003 CNN",
        "threads": args.threads,
    }
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ.setdefault("TRAINLAB_STORE", f"sqlite:///{tmp}/index.db")
        work = Path(tmp)
        if args.part in ("speed", "all"):
            result["speed"] = speed(args.threads, args.steps, work)
        if args.part in ("bf16", "all"):
            result["bf16"] = bf16(args.threads, args.epochs, work)
        if args.part in ("accuracy", "all"):
            result["accuracy"] = accuracy(args.threads, args.epochs, work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
