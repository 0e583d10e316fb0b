"""Data-parallel training on this machine's CPU: 1 process against 2 (gloo).

For the MNIST CNN (examples/mnist_cnn_bn.yaml, 2 epochs) each process count trains the
same recipe through `trainlab train [--nproc 2]`, alternating, `ROUNDS` times; we report
training throughput (training samples per second of fit time, the fastest round) and
the largest weight difference between the 1- and 2-process runs. Batch norm keeps
per-process statistics on the CPU, so for the CNN the weights drift apart by design; the
seed MLP without dropout (SGD) is measured too, where they must agree to float rounding.

On a 2-core machine two processes each get one core: the ratio shows what the
all-reduce costs more than what parallelism gains. Last line: one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
CNN = ["examples/mnist_cnn_bn.yaml", "--set", "train.epochs=2"]
MLP = ["examples/mnist_mlp_dropout.yaml", "--set", "model.dropout=0", "--set",
       "train.optimizer=sgd", "--set", "train.lr=0.05", "--set", "train.epochs=2"]  # fmt: skip


def train(args: list[str], out: Path, nproc: int) -> dict:
    """One `trainlab train` run; its run.json."""
    cmd = [sys.executable, "-m", "trainlab", "train", *args, "--out", str(out), "--quiet"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=1800)
    return json.loads((out / "run.json").read_text())


def samples_per_second(info: dict, train_rows: int) -> float:
    """Training samples per second of fit time (evaluation included, as users wait for it)."""
    timings = info["timings"]
    return train_rows * info["epochs_completed"] / timings["fit_seconds"]


def max_weight_diff(a: Path, b: Path) -> float:
    """The largest absolute difference between two runs' weights."""
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def train_rows(args: list[str]) -> int:
    """The training split's size for the recipe and overrides in `args`."""
    import trainlab
    from trainlab.prepare import prepare

    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    return len(prepare(trainlab.load_recipe(ROOT / args[0], overrides)).splits.train)


def measure(args: list[str], tmp: Path, label: str) -> dict:
    """Rounds of 1 then 2 processes; the fastest throughput of each and the weight gap."""
    rows = train_rows(args)
    best = {1: 0.0, 2: 0.0}
    for i in range(ROUNDS):
        for nproc in (1, 2):
            info = train(args, tmp / f"{label}-{nproc}-{i}", nproc)
            best[nproc] = max(best[nproc], samples_per_second(info, rows))
    gap = max_weight_diff(tmp / f"{label}-1-0", tmp / f"{label}-2-0")
    accuracy = [json.loads((tmp / f"{label}-{n}-0" / "metrics.json").read_text())["test_accuracy"]
                for n in (1, 2)]  # fmt: skip
    return {"samples_per_s_1": round(best[1], 1), "samples_per_s_2": round(best[2], 1),
            "speedup": round(best[2] / best[1], 3), "max_weight_diff": gap,
            "test_accuracy_1": round(accuracy[0], 4), "test_accuracy_2": round(accuracy[1], 4)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cnn = measure(CNN, Path(tmp), "cnn")
        mlp = measure(MLP, Path(tmp), "mlp")
    for label, r in (("mnist_cnn_bn", cnn), ("mlp (sgd, no dropout)", mlp)):
        print(f"{label:22}: 1 process {r['samples_per_s_1']:8.1f} samples/s, 2 processes "
              f"{r['samples_per_s_2']:8.1f} ({r['speedup']:.2f}x); max weight diff "
              f"{r['max_weight_diff']:.2e}; test accuracy {r['test_accuracy_1']:.4f} / "
              f"{r['test_accuracy_2']:.4f}")  # fmt: skip
    print(json.dumps({"bench": "ddp", "rounds": ROUNDS, "backend": "gloo", "cnn": cnn,
                      "mlp": mlp, "reference": "the same recipe in 1 process, same run"}))


if __name__ == "__main__":
    main()
