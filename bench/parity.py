"""Parity: trainlab's engine against a minimal hand-written PyTorch loop.

Both train the MNIST MLP recipe (examples/mnist_mlp_dropout.yaml) in this process with
the same seed, the same initial weights, the same batch order and the same dropout
draws, and both validate after every epoch. The two alternate over several repeats; we
report both final losses and, for each, the fastest repeat's wall time and CPU time.

Why the fastest: on a shared VM the noise only ever adds time (other tenants, page
faults), so the minimum over repeats is the figure least polluted by it — the convention
of Python's `timeit`. The medians are printed too.

Target (Lightning's parity test is the model): time ratio ≤ 1.05 (fastest wall times) and
final losses equal to 5 decimals. The trainlab time includes everything `trainlab.train`
does during the fit — events, metrics, per-epoch checkpoints and history files — but not
data loading.
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
from trainlab.engine import determinism
from trainlab.prepare import prepare

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "mnist_mlp_dropout.yaml"
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 25
# One thread by default: two OpenMP threads on two shared cores jitter by ±20 % run to run,
# which would drown the per-step overhead this bench is after.
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
# cpu (default) or cuda: scripts/gpu_check.sh measures the ratio on a GPU
DEVICE = sys.argv[3] if len(sys.argv) > 3 else "cpu"


def hand_written(recipe) -> tuple[float, float, float, float]:
    """The loop a practitioner would write; returns (seconds, CPU seconds, train loss, val loss)."""
    determinism.seed_everything(recipe.train.seed)
    device = determinism.resolve_device(recipe.train.device)
    determinism.configure(True, recipe.train.threads, device)
    prepared = prepare(recipe, device)
    X, y = prepared.tensors("train")
    Xv, yv = prepared.tensors("val")
    determinism.seed_everything(recipe.train.seed)
    model = prepared.build_model()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.train.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    bs, n = recipe.train.batch_size, len(y)
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(recipe.train.epochs):
        model.train()
        gen = torch.Generator()
        gen.manual_seed(determinism.derived_seed(recipe.train.seed, epoch))
        order = torch.randperm(n, generator=gen).to(X.device)
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
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return seconds, cpu_seconds, total / n, val_loss


def with_trainlab(recipe) -> tuple[float, float, float, float]:
    """The same recipe through trainlab.train; returns the same four figures as the loop."""
    with tempfile.TemporaryDirectory() as tmp:
        run = trainlab.train(recipe, out=Path(tmp) / "run", store=f"sqlite:///{tmp}/i.db")
    last, timings = run.history[-1], run.info["timings"]
    return (
        timings["fit_seconds"],
        timings["fit_cpu_seconds"],
        last["train_loss"],
        last["val_loss"],
    )


def main() -> None:
    recipe = trainlab.load_recipe(RECIPE, {"train.threads": THREADS, "train.device": DEVICE})
    steps = recipe.train.epochs * -(-7200 // recipe.train.batch_size)
    hand_runs, lab_runs = [], []
    for _ in range(REPEATS):
        hand_runs.append(hand_written(recipe))
        lab_runs.append(with_trainlab(recipe))
    hand_wall, lab_wall = [r[0] for r in hand_runs], [r[0] for r in lab_runs]
    hand_cpu, lab_cpu = [r[1] for r in hand_runs], [r[1] for r in lab_runs]
    ratio = min(lab_wall) / min(hand_wall)
    cpu_ratio = min(lab_cpu) / min(hand_cpu)
    median_ratio = statistics.median(lab_wall) / statistics.median(hand_wall)
    h, t = hand_runs[-1], lab_runs[-1]
    same_train = round(h[2], 5) == round(t[2], 5)
    same_val = round(h[3], 5) == round(t[3], 5)
    print(f"optimizer steps per run: {steps}, threads: {torch.get_num_threads()}")
    for label, wall, cpu in (
        ("hand-written loop", hand_wall, hand_cpu),
        ("trainlab engine  ", lab_wall, lab_cpu),
    ):
        print(
            f"{label} : fastest {min(wall):.3f} s wall, {min(cpu):.3f} s CPU"
            f"  (wall: {', '.join(f'{x:.3f}' for x in wall)})"
        )
    print(f"time ratio        : {ratio:.3f} wall, {cpu_ratio:.3f} CPU  (target ≤ 1.05)")
    print(f"median wall ratio : {median_ratio:.3f}  (noisier; for information)")
    print(f"final train loss  : hand {h[2]:.6f}  trainlab {t[2]:.6f}  equal to 5 dp: {same_train}")
    print(f"final val loss    : hand {h[3]:.6f}  trainlab {t[3]:.6f}  equal to 5 dp: {same_val}")
    print(
        json.dumps(
            {
                "bench": "parity",
                "recipe": "examples/mnist_mlp_dropout.yaml",
                "steps": steps,
                "repeats": REPEATS,
                "threads": THREADS,
                "device": DEVICE,
                "trainlab_seconds": round(min(lab_wall), 4),
                "reference_seconds": round(min(hand_wall), 4),
                "reference": "hand-written PyTorch loop, same process, same seed",
                "time_ratio": round(ratio, 4),
                "time_ratio_target": 1.05,
                "cpu_time_ratio": round(cpu_ratio, 4),
                "cpu_time_ratio_target": 1.05,
                "median_wall_ratio": round(median_ratio, 4),
                "trainlab_final_train_loss": round(t[2], 6),
                "reference_final_train_loss": round(h[2], 6),
                "trainlab_final_val_loss": round(t[3], 6),
                "reference_final_val_loss": round(h[3], 6),
                "losses_equal_5dp": same_train and same_val,
                "losses_target": "equal to 5 decimals",
            }
        )
    )


if __name__ == "__main__":
    main()
