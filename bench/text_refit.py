"""The text examples' protocol: choose the epochs on validation, then refit on all 80 %.

`examples/polarity_bilstm.yaml` and `examples/polarity_textcnn.yaml` ship as refits:
`data.val_size: 0` (every non-test sentence trains) and a fixed number of epochs. This
script reproduces how that number was chosen and what the refit gains, per example:

1. selection — the recipe with a validation split (`data.val_size: 0.1`) and early
   stopping on `val_accuracy` (restoring the best epoch), seeds 0..S-1. Each seed's best
   validation epoch; their median is the refit's epoch count;
2. refit — the shipped recipe over the same seeds.

Reported per example: best validation accuracy and test accuracy of the selection runs,
the median best epoch against the shipped one, and the refit's test accuracy.
Target: the refit's mean test accuracy ≥ 0.76 (issue 4). Test accuracy is only
reported; nothing here is chosen by it.

    .venv/bin/python bench/text_refit.py [SEEDS=3] [bilstm|textcnn ...]

One thread per run; both examples over 3 seeds take about 40 minutes.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

import trainlab

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: example → (patience, maximum epochs) of the selection runs
SELECTION = {"bilstm": (2, 12), "textcnn": (3, 20)}
TARGET = 0.76


def selection_recipe(recipe: dict, patience: int, max_epochs: int) -> dict:
    """The shipped refit recipe with a validation split and early stopping on it."""
    r = copy.deepcopy(recipe)
    r["data"]["val_size"] = 0.1
    r["train"]["epochs"] = max_epochs
    stop = {"name": "early_stopping", "monitor": "val_accuracy", "patience": patience}
    r["techniques"] = [*r.get("techniques", []), stop]
    return r


def best_epoch(history: list[dict]) -> int:
    """1-based epoch with the highest validation accuracy (the first, as early stopping)."""
    values = [row["val_accuracy"] for row in history]
    return values.index(max(values)) + 1


def measure(name: str, seeds: int, out: Path) -> dict:
    """Selection and refit runs of one example over `seeds` seeds."""
    shipped = yaml.safe_load((EXAMPLES / f"polarity_{name}.yaml").read_text())
    shipped["train"]["threads"] = 1
    patience, max_epochs = SELECTION[name]
    rows = []
    for seed in range(seeds):
        chosen = selection_recipe(shipped, patience, max_epochs)
        chosen["train"]["seed"] = seed
        sel = trainlab.train(chosen, out=out / f"{name}-select-{seed}")
        refit = copy.deepcopy(shipped)
        refit["train"]["seed"] = seed
        fit = trainlab.train(refit, out=out / f"{name}-refit-{seed}")
        rows.append(
            {
                "seed": seed,
                "best_epoch": best_epoch(sel.history),
                "select_val": round(sel.metrics["val_accuracy"], 4),
                "select_test": round(sel.metrics["test_accuracy"], 4),
                "refit_test": round(fit.metrics["test_accuracy"], 4),
            }
        )
        print(json.dumps({name: rows[-1]}), flush=True)

    def mean(key: str) -> float:
        return round(statistics.mean(r[key] for r in rows), 4)

    return {
        "per_seed": rows,
        "median_best_epoch": statistics.median_low(r["best_epoch"] for r in rows),
        "shipped_epochs": shipped["train"]["epochs"],
        "select_val_mean": mean("select_val"),
        "select_test_mean": mean("select_test"),
        "refit_test_mean": mean("refit_test"),
        "target": TARGET,
        "reference": "the same recipe early-stopped on a 10 % validation split",
    }


def main() -> None:
    args = sys.argv[1:]
    seeds = int(args.pop(0)) if args and args[0].isdigit() else 3
    names = args or list(SELECTION)
    with tempfile.TemporaryDirectory() as tmp:
        result = {name: measure(name, seeds, Path(tmp)) for name in names}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
