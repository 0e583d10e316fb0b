"""Ablation throughput: runs per minute with 1 worker and with 2 worker processes.

The same study (digits MLP, 40 epochs, baseline + cosine over 10 seeds = 20 runs) is run
from scratch three times in one process: sequentially with torch's default thread count
(what `--workers 1` does), sequentially with 1 thread, and with 2 worker processes of 1
thread each. Target: ≥ 1.6× the runs per minute of one worker. Both references are
printed: when a single run already gains from two intra-op threads, splitting the cores
between processes gains less than against the one-thread reference.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from trainlab.studies.ablate import ablate

RECIPE = {
    "name": "digits_mlp",
    "data": {"dataset": "digits", "preprocessing": {"scale": "minmax"}},
    "model": {"name": "mlp", "hidden": [128, 64], "dropout": 0.1},
    "train": {"epochs": 40, "batch_size": 32, "lr": 0.003},
}
SEEDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


def measure(workers: int, threads: int | None = None) -> tuple[float, int]:
    default = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = ablate(
            RECIPE,
            ["cosine"],
            seeds=SEEDS,
            workers=workers,
            study=f"bench-{workers}",
            runs_root=Path(tmp),
        )
        seconds = time.perf_counter() - start
    torch.set_num_threads(default)
    return seconds, result.runs_trained


def main() -> None:
    threads = torch.get_num_threads()
    s1, n1 = measure(1)
    s1t, n1t = measure(1, threads=1)
    s2, n2 = measure(2)
    rate1, rate1t, rate2 = 60 * n1 / s1, 60 * n1t / s1t, 60 * n2 / s2
    print(f"1 worker  ({threads} threads): {n1} runs in {s1:.1f} s → {rate1:.1f} runs/min")
    print(f"1 worker  (1 thread):   {n1t} runs in {s1t:.1f} s → {rate1t:.1f} runs/min")
    print(f"2 workers (1 thread each): {n2} runs in {s2:.1f} s → {rate2:.1f} runs/min")
    print(
        f"speed-up: {rate2 / rate1:.2f}× vs {threads} threads, {rate2 / rate1t:.2f}× vs 1 thread "
        "(target ≥ 1.6×)"
    )
    print(
        json.dumps(
            {
                "bench": "ablate_workers",
                "runs": n1,
                "runs_per_minute_1_worker": round(rate1, 2),
                "runs_per_minute_1_worker_1_thread": round(rate1t, 2),
                "runs_per_minute_2_workers": round(rate2, 2),
                "speedup": round(rate2 / rate1, 3),
                "speedup_vs_1_thread": round(rate2 / rate1t, 3),
                "speedup_target": 1.6,
                "reference": f"the same study, 1 worker ({threads} torch threads; and 1 thread)",
            }
        )
    )


if __name__ == "__main__":
    main()
