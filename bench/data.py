"""Data speed: trainlab's batching and augmentation against torch's DataLoader, on MNIST.

Measured in one process, on the same tensors (the shipped MNIST test set, 10,000 x 1x28x28):

1. batches per second over whole shuffled epochs, batch 32 and 256, for
   - `DataLoader(TensorDataset(X, y), shuffle=True)` (collates sample by sample),
   - trainlab's `TensorBatches` (index blocks of in-memory tensors),
   - `TensorBatches` + trainlab's batch augmentation (random crop, affine, random erasing),
   - `TensorBatches` + the same three ops from kornia, if kornia is importable;
2. the cost of that augmentation relative to one training step (forward, backward, Adam
   step) of a small CNN (conv 32 → conv 64 → dense 128) at the same batch size.

Targets (issue #3): TensorBatches ≥ 5x the DataLoader's rate; augmentation < 30 % of a
CNN step. Usage: `python bench/data.py [REPEATS] [THREADS]`. The last line of standard
output is one JSON object with every figure. Run it on a quiet machine: timings taken
while other jobs share the cores are distorted.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from trainlab.data import DATASETS, TensorBatches
from trainlab.data import augment as A

REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
BATCH_SIZES = (32, 256)


def ours(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """trainlab's ops: crop (pad 2), affine (±10°, ±10 %, 0.9-1.1x), random erasing (p 0.5)."""
    x = A.random_crop(x, 2, gen)
    x = A.affine(x, gen, degrees=10, translate=0.1, scale=(0.9, 1.1))
    return A.random_erasing(x, gen, p=0.5)


def kornia_pipeline():
    """The same three ops from kornia, or None when kornia is not installed."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    return torch.nn.Sequential(
        K.RandomCrop((28, 28), padding=2),
        K.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        K.RandomErasing(p=0.5),
    )


def median_time(fn, repeats: int) -> float:
    """Median wall time of `fn()` over `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def epoch_rate(batches, augment=None) -> float:
    """Batches per second over one full epoch (touching each batch, as training would)."""
    gen = torch.Generator()
    gen.manual_seed(0)
    count = 0

    def run() -> None:
        nonlocal count
        count = 0
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(count)
        for x, _ in batches:
            if augment is not None:
                x = augment(x, gen)
            count += 1

    seconds = median_time(run, REPEATS)
    return count / seconds


def cnn_step_seconds(X: torch.Tensor, y: torch.Tensor, bs: int) -> float:
    """Median seconds of one forward + backward + Adam step of a small CNN."""
    from trainlab.models.registry import MODELS
    from trainlab.tasks import TaskInfo

    entry = MODELS.get("cnn")
    params = entry.params(channels=[32, 64], dense=[128])
    info = TaskInfo("multiclass", 10, (1, 28, 28), [str(i) for i in range(10)])
    model = entry.builder(params, info)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xb, yb = X[:bs], y[:bs]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        opt.step()

    return median_time(step, max(5, REPEATS * 3))


def main() -> None:
    torch.set_num_threads(THREADS)
    data = DATASETS.get("mnist").builder(None)
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y)
    korn = kornia_pipeline()
    results: dict = {"threads": THREADS, "repeats": REPEATS, "samples": len(y), "by_batch": {}}
    for bs in BATCH_SIZES:
        g = torch.Generator()
        g.manual_seed(0)
        loader = DataLoader(TensorDataset(X, y), batch_size=bs, shuffle=True, generator=g)
        tb = TensorBatches(X, y, bs, shuffle=True, seed=0)
        row = {
            "dataloader_batches_per_s": epoch_rate(loader),
            "trainlab_batches_per_s": epoch_rate(tb),
            "trainlab_aug_batches_per_s": epoch_rate(tb, ours),
        }
        if korn is not None:
            row["trainlab_kornia_aug_batches_per_s"] = epoch_rate(tb, lambda x, _g: korn(x))
        row["speedup_vs_dataloader"] = (
            row["trainlab_batches_per_s"] / row["dataloader_batches_per_s"]
        )
        row["aug_speedup_vs_dataloader"] = (
            row["trainlab_aug_batches_per_s"] / row["dataloader_batches_per_s"]
        )
        step = cnn_step_seconds(X, y, bs)
        gen = torch.Generator()
        gen.manual_seed(1)
        xb = X[:bs]
        aug_s = median_time(lambda xb=xb, gen=gen: ours(xb, gen), max(5, REPEATS * 3))
        row["cnn_step_ms"] = step * 1e3
        row["aug_ms"] = aug_s * 1e3
        row["aug_fraction_of_step"] = aug_s / step
        if korn is not None:
            k_s = median_time(lambda xb=xb: korn(xb), max(5, REPEATS * 3))
            row["kornia_aug_ms"] = k_s * 1e3
            row["kornia_aug_fraction_of_step"] = k_s / step
        results["by_batch"][str(bs)] = {k: round(v, 4) for k, v in row.items()}
        print(
            f"batch {bs:>3}: DataLoader {row['dataloader_batches_per_s']:8.1f}/s  "
            f"TensorBatches {row['trainlab_batches_per_s']:9.1f}/s "
            f"({row['speedup_vs_dataloader']:.1f}x)  "
            f"+aug {row['trainlab_aug_batches_per_s']:8.1f}/s"
            + (
                f"  +kornia {row['trainlab_kornia_aug_batches_per_s']:7.1f}/s"
                if korn is not None
                else ""
            )
            + f"  | CNN step {row['cnn_step_ms']:.2f} ms, aug {row['aug_ms']:.2f} ms "
            f"({100 * row['aug_fraction_of_step']:.0f} %)"
            + (f", kornia {row['kornia_aug_ms']:.2f} ms" if korn is not None else ""),
            file=sys.stderr,
        )
    results["kornia"] = korn is not None
    results["targets"] = {
        "speedup_ge_5x": all(r["speedup_vs_dataloader"] >= 5 for r in results["by_batch"].values()),
        "aug_lt_30pct_of_step": all(
            r["aug_fraction_of_step"] < 0.3 for r in results["by_batch"].values()
        ),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
