"""The doctor end to end: findings, recommendations and what `--apply` proved, with timings.

Usage: python bench/doctor.py [RECIPE] [--budget 10m] [--seeds 3] [--max-apply 4]
       [--workers 2] [--set key=value ...]

Default recipe: examples/mnist_cnn_bn.yaml (the issue's bar: `trainlab doctor
examples/mnist_cnn_bn.yaml --apply` within 15 minutes on 2 cores). Prints the findings,
each applied change's validation and test effect with its 95 % interval, the phase
timings, and one JSON line at the end. Timings are only meaningful on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from trainlab.studies.doctor import doctor

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe", nargs="?", default=str(ROOT / "examples" / "mnist_cnn_bn.yaml"))
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-apply", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="doctor-bench-"))
    start = time.perf_counter()
    report = doctor(
        args.recipe,
        args.overrides,
        budget=args.budget,
        apply=True,
        seeds=args.seeds,
        max_apply=args.max_apply,
        workers=args.workers,
        out=out,
        progress=lambda text: print(f"[{time.perf_counter() - start:7.1f}s] {text}", flush=True),
    )
    total = time.perf_counter() - start
    data = report.to_dict()
    probe = data["probe"]
    print(f"probe: {probe['status']}, {probe['epochs']} epochs, {probe['fit_seconds']:.1f}s")
    if data["fit"]:
        print(f"fit: {data['fit']['verdict']}: {data['fit']['reason']}")
    for f in data["findings"]:
        print(f"finding {f['code']} ({f['severity']}): {f['message']}")
    for r in data["recommendations"]:
        print(f"recommend {r['name']} for {r['code']}: {r['reason']} (apply: {r['applicable']})")
    applied = data.get("applied") or {}
    for row in applied.get("rows", []):
        e, t = row["effect"] or {}, row["test"] or {}
        print(
            f"{row['technique']:>16}: val {e.get('mean', float('nan')):+.4f} "
            f"[{e.get('ci_low', float('nan')):+.4f}, {e.get('ci_high', float('nan')):+.4f}] "
            f"{row['verdict']}; test {t.get('mean', float('nan')):+.4f} "
            f"[{t.get('ci_low', float('nan')):+.4f}, {t.get('ci_high', float('nan')):+.4f}] "
            f"{t.get('verdict', '')}"
        )
    print(f"total {total:.0f}s ({total / 60:.1f} min); report {out / 'report.json'}")
    print(json.dumps({"seconds": total, "report": data}, default=float))


if __name__ == "__main__":
    main()
