"""Ablation throughput: runs per minute with 1 worker and with 2 worker processes.

The same study (digits MLP, 5 epochs, baseline + cosine over 8 seeds = 16 runs) is run
from scratch twice in one process: once sequentially (torch's default thread count) and
once with 2 worker processes of 1 thread each. Target: ≥ 1.6× the runs per minute.
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
    "train": {"epochs": 5, "batch_size": 32, "lr": 0.003},
}
SEEDS = int(sys.argv[1]) if len(sys.argv) > 1 else 8


def measure(workers: int) -> tuple[float, int]:
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
    return seconds, result.runs_trained


def main() -> None:
    threads = torch.get_num_threads()
    s1, n1 = measure(1)
    s2, n2 = measure(2)
    rate1, rate2 = 60 * n1 / s1, 60 * n2 / s2
    print(f"1 worker  ({threads} threads): {n1} runs in {s1:.1f} s → {rate1:.1f} runs/min")
    print(f"2 workers (1 thread each): {n2} runs in {s2:.1f} s → {rate2:.1f} runs/min")
    print(f"speed-up: {rate2 / rate1:.2f}× (target ≥ 1.6×)")
    print(
        json.dumps(
            {
                "bench": "ablate_workers",
                "runs": n1,
                "runs_per_minute_1_worker": round(rate1, 2),
                "runs_per_minute_2_workers": round(rate2, 2),
                "speedup": round(rate2 / rate1, 3),
                "speedup_target": 1.6,
                "reference": f"the same study, 1 worker ({threads} torch threads), same process",
            }
        )
    )


if __name__ == "__main__":
    main()
