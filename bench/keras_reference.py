"""The seed's own Keras code against trainlab's port, on the same MNIST split, over seeds.

Seed 003 §4.2 builds a CNN with batch normalization in Keras (conv 32 → BN → max-pool →
conv 64 → BN → max-pool → dense 64 ReLU → BN → dense 10; Adam; 5 epochs; batch 32).
This script runs that code verbatim (Keras 3 on its PyTorch backend) on trainlab's
canonical MNIST split (7,200 train / 800 validation / 2,000 test) and, with the same
seeds, `examples/mnist_cnn_bn.yaml` as shipped and without its `precise_bn` technique.
Reported: test accuracy per seed, mean and standard deviation of each.

Keras is not a trainlab dependency. Install it beside trainlab to run this:

    .venv/bin/pip install keras
    .venv/bin/python bench/keras_reference.py [SEEDS=5]

Every training uses one thread; a seed takes about 3 minutes for the three runs.
Target: trainlab's example reaches ≥ 0.98 on average and is not below Keras' mean.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch  # noqa: E402

import trainlab  # noqa: E402
from trainlab.prepare import prepare  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import seed_keras_layers  # noqa: E402  (the seeds' Keras models, one copy)

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn_bn.yaml"
SEEDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def canonical_split():
    """trainlab's split of the shipped MNIST set, as NHWC arrays for Keras."""
    recipe = trainlab.load_recipe(RECIPE)
    splits = prepare(recipe).splits
    nhwc = {k: getattr(splits, k).X.transpose(0, 2, 3, 1) for k in ("train", "test")}
    return nhwc["train"], splits.train.y, nhwc["test"], splits.test.y


def keras_seed_code(seed: int, x_train, y_train, x_test, y_test) -> float:
    """Seed 003 §4.2 as written (only `keras.Input` replaces `input_shape`, as Keras 3 asks)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(seed_keras_layers(keras, "cnn"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, verbose=0)
    return float(model.evaluate(x_test, y_test, verbose=0)[1])


def trainlab_example(seed: int, out: Path, precise_bn: bool = True) -> float:
    """Test accuracy of the example recipe at `seed` (without `precise_bn` if asked)."""
    overrides = [f"train.seed={seed}", "train.threads=1"]
    if not precise_bn:
        overrides.append("techniques=[]")
    run = trainlab.train(RECIPE, overrides, out=out)
    return float(run.metrics["test_accuracy"])


def summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "per_seed": [round(v, 4) for v in values],
    }


def main() -> None:
    try:
        import keras  # noqa: F401
    except ImportError:
        sys.exit("keras is not installed: .venv/bin/pip install keras (runs on torch)")
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = canonical_split()
    results: dict[str, list[float]] = {"keras": [], "trainlab": [], "trainlab_no_precise_bn": []}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TRAINLAB_STORE", f"sqlite:///{tmp}/index.db")
        for seed in range(SEEDS):
            results["keras"].append(keras_seed_code(seed, x_train, y_train, x_test, y_test))
            results["trainlab"].append(trainlab_example(seed, Path(tmp) / f"tl{seed}"))
            results["trainlab_no_precise_bn"].append(
                trainlab_example(seed, Path(tmp) / f"plain{seed}", precise_bn=False)
            )
            print(seed, {k: round(v[-1], 4) for k, v in results.items()}, flush=True)
    table = {k: summary(v) for k, v in results.items()}
    for name, row in table.items():
        print(f"{name:>24}: test accuracy {row['mean']:.4f} ± {row['std']:.4f} over {SEEDS} seeds")
    print(
        json.dumps(
            {
                "bench": "keras_reference",
                "seeds": SEEDS,
                "data": "MNIST t10k, canonical split: 7,200 train / 2,000 test",
                "trainlab_test_accuracy": {**table["trainlab"], "target": ">= 0.98"},
                "trainlab_without_precise_bn": table["trainlab_no_precise_bn"],
                "reference_keras_seed_code": table["keras"],
                "ratio_trainlab_to_keras": round(
                    table["trainlab"]["mean"] / table["keras"]["mean"], 4
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
