"""Compression end to end on the shipped data, against the issue's bars, in one process.

Trains each source run once (the shipped example recipes), then compresses it with
`trainlab.compress` and reports what `compress` measured side by side (test accuracy,
parameters, size, MACs, CPU latency at batch 1 and 256, threads):

- seed CNN (`mnist_cnn_bn`): structured pruning (Torch-Pruning) and channel pruning by
  activation — bar: >= 2.0x batch-256 latency at <= 1.0 point of test accuracy lost —
  and `--vs-scratch 3` on the pruned CNN (the verdict with its interval);
- seed MLP (`mnist_mlp_dropout`): magnitude pruning to 90 % sparsity with the seed's
  retrain loop (bar: <= 0.5 point lost) and neuron pruning of the hidden layer to
  <= 48 of 128 units (bar: <= 0.5 point lost, with its measured speed-up);
- int8 dynamic quantization on `adult_wide_deep` and `polarity_bilstm` (bar: >= 1.5x
  batch-256 latency at <= 0.3 point lost, or the measurement that shows why not).

Usage: python bench/compress.py [--only cnn,mlp,int8] [--vs-scratch 3] [--out DIR]
Timings mean something only on a quiet machine. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import trainlab
from trainlab.compress.api import compress
from trainlab.compress.methods import MethodOptions

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: (case, source recipe, overrides, --prune specs, --quantize, options, bar)
CASES = {
    "cnn": [
        ("cnn_structured", "mnist_cnn_bn.yaml", [], ["structured:0.5,0.7"], None,
         {"steps": 2, "finetune": 2}, {"speedup_b256": 2.0, "max_drop": 0.01}),
        ("cnn_channels", "mnist_cnn_bn.yaml", [], ["channels:0.5,0.7"], None,
         {"steps": 2, "finetune": 2}, {"speedup_b256": 2.0, "max_drop": 0.01}),
    ],
    "mlp": [
        ("mlp_magnitude", "mnist_mlp_dropout.yaml", [], ["magnitude:0.9"], None,
         {"steps": 3, "finetune": 1}, {"sparsity": 0.9, "max_drop": 0.005}),
        ("mlp_neurons", "mnist_mlp_dropout.yaml", [], ["neurons:0.625"], None,
         {"steps": 5, "finetune": 2}, {"max_units": 48, "max_drop": 0.005}),
    ],
    "int8": [
        ("wide_deep_int8", "adult_wide_deep.yaml", [], [], "int8", {},
         {"speedup_b256": 1.5, "max_drop": 0.003}),
        ("bilstm_int8", "polarity_bilstm.yaml", [], [], "int8", {},
         {"speedup_b256": 1.5, "max_drop": 0.003}),
    ],
}  # fmt: skip


def _source(recipe: str, overrides: list[str], out: Path, cache: dict) -> Path:
    """Train the source run once per recipe and overrides."""
    key = (recipe, tuple(overrides))
    if key not in cache:
        started = time.perf_counter()
        run = trainlab.train(EXAMPLES / recipe, overrides, out=out / f"src-{len(cache)}")
        print(f"trained {recipe}: test accuracy {run.metrics['test_accuracy']:.4f} "
              f"in {time.perf_counter() - started:.1f}s", flush=True)  # fmt: skip
        cache[key] = run.run_dir
    return cache[key]


def _verdict(result: dict, bar: dict) -> dict:
    """Each bar's figure and whether it was met."""
    drop = result["before"]["test_accuracy"] - result["after"]["test_accuracy"]
    checks = {"test_drop": round(drop, 4), "drop_ok": drop <= bar["max_drop"] + 1e-9}
    if "speedup_b256" in bar:
        checks["speedup_ok"] = result["speedup_b256"] >= bar["speedup_b256"]
    if "sparsity" in bar:  # of the pruned layers (biases and the output layer stay whole)
        sparsity = result["steps"][0]["details"]["sparsity"]
        checks["sparsity"] = round(sparsity, 4)
        checks["sparsity_ok"] = sparsity >= bar["sparsity"] - 1e-6
    if "max_units" in bar:
        layers = [s["details"].get("layers", {}) for s in result["steps"]]
        checks["units"] = {n: u["after"] for step in layers for n, u in step.items()}
        checks["units_ok"] = all(u <= bar["max_units"] for u in checks["units"].values())
    return checks


def run_case(case, out: Path, cache: dict, vs_scratch: int) -> dict:
    """Compress one source as the case says; the figures and the bars' verdicts."""
    name, recipe, overrides, prune, quantize, opts, bar = case
    source = _source(recipe, overrides, out, cache)
    options = MethodOptions(steps=opts.get("steps", 1))
    started = time.perf_counter()
    result = compress(
        source, prune, quantize, finetune=opts.get("finetune", 2), target_drop=bar["max_drop"],
        out=out / name, options=options, vs_scratch=vs_scratch if name == "cnn_structured" else 0,
        progress=lambda line: print(f"  [{name}] {line}", flush=True),
    ).to_dict()  # fmt: skip
    seconds = time.perf_counter() - started
    b, a = result["before"], result["after"]
    print(f"{name}: {result['method']}  test {b['test_accuracy']:.4f} -> {a['test_accuracy']:.4f}"
          f"  b256 {b['latency_ms_b256']:.2f} -> {a['latency_ms_b256']:.2f} ms "
          f"({result['speedup_b256']:.2f}x)  params {b['params']:,} -> {a['params']:,}  "
          f"{seconds:.0f}s", flush=True)  # fmt: skip
    return {"case": name, "seconds": round(seconds, 1), "result": result,
            "bars": _verdict(result, bar)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="cnn,mlp,int8")
    parser.add_argument("--vs-scratch", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="compress-bench-"))
    os.environ.setdefault("TRAINLAB_STORE", f"sqlite:///{out}/index.db")
    cache: dict = {}
    rows = []
    for group in args.only.split(","):
        for case in CASES[group]:
            try:
                rows.append(run_case(case, out, cache, args.vs_scratch))
            except trainlab.TrainlabError as exc:
                print(f"{case[0]}: {exc}", flush=True)
                rows.append({"case": case[0], "error": str(exc)})
    summary = {
        r["case"]: {**r["bars"], "method": r["result"]["method"],
                    "speedup_b256": r["result"]["speedup_b256"],
                    "vs_scratch": (r["result"].get("vs_scratch") or {}).get("verdict")}
        for r in rows if "result" in r
    }  # fmt: skip
    print(json.dumps({"bench": "compress", "out": str(out), "summary": summary, "cases": rows}))


if __name__ == "__main__":
    main()
