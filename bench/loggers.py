"""What `train.loggers` costs on bench/parity.py's workload.

    .venv/bin/python bench/loggers.py [ROUNDS] [THREADS]   # default 5 rounds, 1 thread (~2 min)

The MNIST MLP recipe of bench/parity.py (examples/mnist_mlp_dropout.yaml, 5 epochs,
1,125 optimizer steps) is trained in this process without loggers, with `[tensorboard,
csv]` and with all three (`[tensorboard, mlflow, csv]`), in rotating order, ROUNDS times
each. Figures, each against the run without loggers:

- fit time: `fit_seconds` of run.json (first to last engine event: the loggers' per-step
  sampling, per-epoch writes and final writes included), fastest over fastest as
  bench/parity.py compares; target ≤ 1.02. Its CPU time too (`fit_cpu_seconds`, every
  thread of the process: MLflow's sender thread included).
- logger CPU: the CPU time spent inside the loggers during the fit (the subscriber's
  handlers on the training thread, MLflow's sender thread), measured around those calls
  only: least over the runs, over the least fit CPU time without loggers (medians over
  medians too). Other tenants of a shared machine inflate whole-fit times by tens of
  percent from one run to the next; this figure is the one they disturb least.
- setup outside the fit: opening the destinations before the first epoch (the MLflow
  run and its params). The imports of TensorBoard and MLflow and the cached empty MLflow
  store are paid once per process and once per machine: the first logged run's extra.

The MLflow store is each run's own (`<run_dir>/mlflow/`), its cached empty copy in a
temporary cache folder. The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import trainlab  # noqa: E402
from trainlab.loggers.mlflow import MlflowLogger  # noqa: E402
from trainlab.loggers.subscriber import Logging  # noqa: E402

RECIPE = ROOT / "examples" / "mnist_mlp_dropout.yaml"  # bench/parity.py's
CONFIGS = {"none": [], "tensorboard+csv": ["tensorboard", "csv"],
           "all three": ["tensorboard", "mlflow", "csv"]}  # fmt: skip
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
TARGET = 1.02
LOGGER_CPU = [0.0]  # seconds of CPU inside logger code, this run
_DEPTH = threading.local()  # calls being counted on this thread (nested ones count once)


def _counted(method: Callable) -> Callable:
    """`method`, adding the CPU time of its calling thread to LOGGER_CPU."""

    def counted(*args, **kwargs):
        depth = getattr(_DEPTH, "n", 0)
        _DEPTH.n = depth + 1
        start = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            _DEPTH.n = depth
            if depth == 0:
                LOGGER_CPU[0] += time.thread_time() - start

    return counted


for _cls, _names in ((Logging, ("on_fit_start", "on_before_step", "on_epoch_end", "on_fit_end")),
                     (MlflowLogger, ("_send", "_finish"))):  # fmt: skip
    for _name in _names:
        setattr(_cls, _name, _counted(getattr(_cls, _name)))


def one_run(recipe, tmp: Path, name: str) -> dict[str, float]:
    """Train once; the fit's wall and CPU seconds, the loggers' CPU, the setup around."""
    LOGGER_CPU[0] = 0.0
    started = time.perf_counter()
    run = trainlab.train(recipe, out=tmp / name, store=f"sqlite:///{tmp}/index.db")
    wall = time.perf_counter() - started
    timings = run.info["timings"]
    return {
        "fit": timings["fit_seconds"],
        "cpu": timings["fit_cpu_seconds"],
        "logger_cpu": LOGGER_CPU[0],
        "outside": wall - timings["fit_seconds"],  # data, assembly, loggers' setup, saving
        "val_loss": run.history[-1]["val_loss"],
    }


def main() -> None:
    recipes = {
        label: trainlab.load_recipe(
            RECIPE, {"train.threads": THREADS, **({"train.loggers": names} if names else {})}
        )
        for label, names in CONFIGS.items()
    }
    runs: dict[str, list[dict]] = {label: [] for label in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")  # never the user's ~/.cache
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        one_run(recipes["none"], tmp, "warm")  # data loaded and cached once for all
        first = one_run(recipes["all three"], tmp, "first")  # imports, empty MLflow store
        labels = list(CONFIGS)
        for r in range(ROUNDS):
            for label in labels[r % 3 :] + labels[: r % 3]:
                runs[label].append(one_run(recipes[label], tmp, f"r{r}-{label}"))
    report(runs, first)


def _compare(runs: list[dict], plain: list[dict]) -> dict[str, float]:
    fit_p, cpu_p = [r["fit"] for r in plain], [r["cpu"] for r in plain]
    outside_p = statistics.median(r["outside"] for r in plain)
    return {
        "fit_ratio": min(r["fit"] for r in runs) / min(fit_p),
        "fit_cpu_ratio": min(r["cpu"] for r in runs) / min(cpu_p),
        "median_fit_ratio": statistics.median(r["fit"] for r in runs) / statistics.median(fit_p),
        "logger_cpu_share": min(r["logger_cpu"] for r in runs) / min(cpu_p),
        "median_logger_cpu_share": statistics.median(r["logger_cpu"] for r in runs)
        / statistics.median(cpu_p),
        "setup_seconds": statistics.median(r["outside"] for r in runs) - outside_p,
    }


def report(runs: dict[str, list[dict]], first: dict) -> None:
    """Print the table and the JSON line."""
    plain = runs["none"]
    print(f"workload: {RECIPE.name}, {ROUNDS} rounds, threads {torch.get_num_threads()}")
    for label, rows in runs.items():
        fits = ", ".join(f"{r['fit']:.3f}" for r in rows)
        print(f"{label:16s}: fastest fit {min(r['fit'] for r in rows):.3f} s wall, "
              f"{min(r['cpu'] for r in rows):.3f} s CPU (fits: {fits})")  # fmt: skip
    figures = {label: _compare(rows, plain) for label, rows in runs.items() if label != "none"}
    for label, f in figures.items():
        print(f"{label:16s}: fit ratio {f['fit_ratio']:.4f} wall, {f['fit_cpu_ratio']:.4f} CPU "
              f"(median {f['median_fit_ratio']:.4f}); logger CPU {100 * f['logger_cpu_share']:.2f}"
              f" % of the fit's (median {100 * f['median_logger_cpu_share']:.2f} %); "
              f"setup +{f['setup_seconds']:.3f} s")  # fmt: skip
    first_setup = first["outside"] - statistics.median(r["outside"] for r in plain)
    print(f"first logged run in a process: +{first_setup:.3f} s (imports, empty MLflow store)")
    same = len({round(r["val_loss"], 6) for rows in runs.values() for r in rows}) == 1
    print(f"same final val loss with and without loggers: {same}")
    every = figures["all three"]
    print(
        json.dumps(
            {
                "bench": "loggers",
                "recipe": "examples/mnist_mlp_dropout.yaml",
                "rounds": ROUNDS,
                "threads": THREADS,
                "plain_fit_seconds": round(min(r["fit"] for r in plain), 4),
                "target": TARGET,
                **{f"{k}": round(v, 4) for k, v in every.items()},
                "tensorboard_csv": {k: round(v, 4) for k, v in figures["tensorboard+csv"].items()},
                "first_run_setup_seconds": round(first_setup, 3),
                "meets_target_wall": every["fit_ratio"] <= TARGET,
                "meets_target_logger_cpu": every["logger_cpu_share"] <= TARGET - 1,
                "same_results": same,
            }
        )
    )


if __name__ == "__main__":
    main()
