"""Grid search against TPE + ASHA on the MNIST MLP: best validation accuracy and epochs spent.

    .venv/bin/python bench/tune.py                # MNIST MLP, 48-point grid, ~10 min on 2 cores
    .venv/bin/python bench/tune.py --dataset digits --epochs 8   # a quick variant

Both searches run over examples/mnist_mlp_space.yaml (learning rate, batch size, hidden
width, dropout, weight decay): grid visits the 48 points of its `grid:` lists; TPE samples
the same 48 candidates (`--tpe-space ranges`: the full continuous ranges instead) and
ASHA (first rung 2 epochs, factor 3) stops trials that fall behind. A point TPE proposes
again is answered from the earlier trial (runs are deterministic), costing no epoch.
The target from issue #7: TPE + ASHA within 0.3 points of grid's best validation
accuracy with at most 1/3 of its epochs.
Each best recipe is then trained once more and tested (the test split guides nothing).
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trainlab.studies.tune import tune  # noqa: E402


def search(recipe: dict, space: Path, out: Path, **kw) -> dict:
    """One search; its summary plus wall time."""
    started = time.perf_counter()
    result = tune(recipe, space, out=out, plots=False, **kw).summary()
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", help="mnist (default) or digits")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per full trial")
    parser.add_argument("--tpe-trials", type=int, default=26)
    parser.add_argument("--asha-min-epochs", type=int, default=2, help="ASHA's first rung (epochs)")
    parser.add_argument(
        "--tpe-space",
        choices=("ranges", "grid-points"),
        default="grid-points",
        help="TPE over exactly the grid's values (same candidates as grid) or the full ranges",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the studies here")
    args = parser.parse_args()

    recipe = yaml.safe_load((ROOT / "examples" / "mnist_mlp_dropout.yaml").read_text())
    recipe["name"] = f"bench-{args.dataset}"
    recipe["data"]["dataset"] = args.dataset
    recipe["data"]["val_size"] = 0.2  # 1,600 MNIST validation images: 0.3 points = 5 images
    recipe["train"]["epochs"] = args.epochs
    recipe["train"]["threads"] = 1
    space = ROOT / "examples" / "mnist_mlp_space.yaml"
    out = args.out or Path(tempfile.mkdtemp(prefix="trainlab-bench-tune-"))
    common = {"workers": args.workers, "seed": args.seed, "quiet": False}

    grid = search(recipe, space, out / "grid", sampler="grid", trials=10_000, **common)
    tpe_space: Path | dict = space
    if args.tpe_space == "grid-points":
        raw = yaml.safe_load(space.read_text())
        tpe_space = {
            k: {"choices": v["grid"]} if isinstance(v, dict) and "grid" in v else v
            for k, v in raw.items()
        }
    tpe = search(
        recipe,
        tpe_space,
        out / "tpe-asha",
        sampler="tpe",
        sampler_options={"n_startup_trials": 8},
        pruner="asha",
        pruner_options={"min_resource": args.asha_min_epochs, "reduction_factor": 3},
        trials=args.tpe_trials,
        **common,
    )
    gap = (grid["best_value"] - tpe["best_value"]) * 100
    ratio = tpe["epochs_total"] / grid["epochs_total"]
    rows = []
    for name, r in (("grid", grid), ("tpe+asha", tpe)):
        counts = r["trials"]
        test = (r.get("best_run") or {}).get("metrics", {}).get("test_accuracy")
        rows.append(
            f"{name:9s} trials {counts['complete'] + counts['pruned']:3d} "
            f"(pruned {counts['pruned']:2d})  epochs {r['epochs_total']:4d}  "
            f"best val acc {r['best_value']:.4f}  test acc of best {test}  "
            f"wall {r['wall_seconds']:.0f}s"
        )
    print("\n".join(rows), file=sys.stderr)
    result = {
        "bench": "tune",
        "dataset": args.dataset,
        "epochs_per_trial": args.epochs,
        "workers": args.workers,
        "asha_min_epochs": args.asha_min_epochs,
        "tpe_space": args.tpe_space,
        "grid": {
            "trials": grid["trials"],
            "epochs": grid["epochs_total"],
            "best_val_accuracy": grid["best_value"],
            "best_params": grid["best_params"],
            "best_test_accuracy": grid["best_run"]["metrics"].get("test_accuracy"),
            "wall_seconds": grid["wall_seconds"],
        },
        "tpe_asha": {
            "trials": tpe["trials"],
            "epochs": tpe["epochs_total"],
            "best_val_accuracy": tpe["best_value"],
            "best_params": tpe["best_params"],
            "best_test_accuracy": tpe["best_run"]["metrics"].get("test_accuracy"),
            "wall_seconds": tpe["wall_seconds"],
        },
        "val_accuracy_gap_points": round(gap, 3),
        "epoch_ratio": round(ratio, 3),
        "target_met": bool(gap <= 0.3 and ratio <= 1 / 3),
        "out": str(out),
    }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
