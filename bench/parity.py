"""Parity: trainlab's engine against a minimal hand-written PyTorch loop.

Both train the MNIST MLP recipe (examples/mnist_mlp_dropout.yaml) in this process with
the same seed, the same initial weights, the same batch order and the same dropout
draws, and both validate after every epoch. We report the wall time of each (median of
several alternating repeats), their ratio, and both final losses.

Target (Lightning's parity test is the model): time ratio ≤ 1.05 and final losses equal
to 5 decimals. The trainlab time includes everything `trainlab.train` does during the
fit — events, metrics, per-epoch checkpoints and history files — but not data loading.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import trainlab
from trainlab import setup
from trainlab.engine import determinism

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "mnist_mlp_dropout.yaml"
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
# One thread by default: two OpenMP threads on two shared cores jitter by ±20 % run to run,
# which would drown the per-step overhead this bench is after.
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 1


def hand_written(recipe) -> tuple[float, float, float]:
    """The loop a practitioner would write; returns (seconds, last train loss, val loss)."""
    determinism.seed_everything(recipe.train.seed)
    determinism.configure(True, recipe.train.threads)
    data = setup.load_dataset(recipe)
    info = setup.task_info(recipe, data)
    splits, _ = setup.split_and_preprocess(recipe, data)
    X, y = setup.to_tensors(splits.train.X, splits.train.y, info, torch.device("cpu"))
    Xv, yv = setup.to_tensors(splits.val.X, splits.val.y, info, torch.device("cpu"))
    determinism.seed_everything(recipe.train.seed)
    model = setup.build_model(recipe, info)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.train.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    bs, n = recipe.train.batch_size, len(y)
    start = time.perf_counter()
    for epoch in range(recipe.train.epochs):
        model.train()
        gen = torch.Generator()
        gen.manual_seed(determinism.derived_seed(recipe.train.seed, epoch))
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(Xv), yv).item()
    seconds = time.perf_counter() - start
    return seconds, total / n, val_loss


def with_trainlab(recipe) -> tuple[float, float, float]:
    """The same recipe through trainlab.train; returns (fit seconds, train loss, val loss)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = trainlab.train(recipe, out=Path(tmp) / "run", store=f"sqlite:///{tmp}/i.db")
    last = run.history[-1]
    return run.info["timings"]["fit_seconds"], last["train_loss"], last["val_loss"]


def main() -> None:
    recipe = trainlab.load_recipe(RECIPE, {"train.threads": THREADS})
    steps = recipe.train.epochs * -(-7200 // recipe.train.batch_size)
    hand_times, lab_times = [], []
    for _ in range(REPEATS):
        h = hand_written(recipe)
        t = with_trainlab(recipe)
        hand_times.append(h[0])
        lab_times.append(t[0])
    hand_s, lab_s = statistics.median(hand_times), statistics.median(lab_times)
    ratio = lab_s / hand_s
    same_train = round(h[1], 5) == round(t[1], 5)
    same_val = round(h[2], 5) == round(t[2], 5)
    print(f"optimizer steps per run: {steps}, threads: {torch.get_num_threads()}")
    print(
        f"hand-written loop : {hand_s:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in hand_times)})"
    )
    print(f"trainlab engine   : {lab_s:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in lab_times)})")
    print(f"time ratio        : {ratio:.3f}  (target ≤ 1.05)")
    print(f"final train loss  : hand {h[1]:.6f}  trainlab {t[1]:.6f}  equal to 5 dp: {same_train}")
    print(f"final val loss    : hand {h[2]:.6f}  trainlab {t[2]:.6f}  equal to 5 dp: {same_val}")
    print(
        json.dumps(
            {
                "bench": "parity",
                "recipe": "examples/mnist_mlp_dropout.yaml",
                "steps": steps,
                "trainlab_seconds": round(lab_s, 4),
                "reference_seconds": round(hand_s, 4),
                "reference": "hand-written PyTorch loop, same process, same seed",
                "threads": THREADS,
                "time_ratio": round(ratio, 4),
                "time_ratio_target": 1.05,
                "trainlab_final_train_loss": round(t[1], 6),
                "reference_final_train_loss": round(h[1], 6),
                "trainlab_final_val_loss": round(t[2], 6),
                "reference_final_val_loss": round(h[2], 6),
                "losses_equal_5dp": same_train and same_val,
                "losses_target": "equal to 5 decimals",
            }
        )
    )


if __name__ == "__main__":
    main()
