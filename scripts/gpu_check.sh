#!/usr/bin/env bash
# The GPU check: on a CUDA machine, one command that installs trainlab beside a CUDA build
# of torch, runs the `gpu` tests, and prints the MNIST CNN's epoch time and the seed MLP's
# parity ratio on the GPU as one JSON line (the last line). Finishes in under 8 minutes.
#
#   bash scripts/gpu_check.sh
#
# Python: $PYTHON if set; else the first of .venv/bin/python and python3 whose torch sees a
# GPU. None does: a fresh .venv gets `pip install torch==2.14.1` (a CUDA build; needs the
# package registry) and trainlab from this checkout. A Python that already has a CUDA torch
# but lacks trainlab's other dependencies gets them from pip where it can; a machine without
# a registry (a lent GPU box) must already hold them — the script names what is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${GPU_CHECK_OUT:-${TMPDIR:-/tmp}/trainlab-gpu-check}"
mkdir -p "$OUT"
log() { echo "gpu_check: $*" >&2; }

sees_gpu() { "$1" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for candidate in .venv/bin/python python3; do
    if command -v "$candidate" >/dev/null 2>&1 && sees_gpu "$candidate"; then
      echo "$candidate"; return
    fi
  done
  log "no Python here has a CUDA torch: installing torch==2.14.1 (CUDA) into .venv-gpu"
  python3 -m venv .venv-gpu
  .venv-gpu/bin/pip install --quiet torch==2.14.1 >&2
  echo .venv-gpu/bin/python
}

PY="$(pick_python)"
sees_gpu "$PY" || { log "$PY: torch sees no CUDA GPU (nvidia-smi: $(nvidia-smi -L 2>&1 | head -1))"; exit 1; }
log "python: $PY ($("$PY" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'))"

# trainlab from this checkout, on the import path without touching that Python's packages
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
missing="$("$PY" - <<'PY'
import importlib.util
need = ["numpy", "yaml", "pydantic", "typer", "rich", "safetensors", "sklearn", "optuna",
        "sqlalchemy", "pytest", "matplotlib"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PY
)"
if [ -n "$missing" ]; then
  log "missing for trainlab: $missing — trying pip (needs the package registry)"
  "$PY" -m pip install --quiet -c constraints.txt --no-deps -e . >&2 || true
  "$PY" -m pip install --quiet -e '.[dev]' >&2 || {
    log "could not install: $missing; carry them as wheels (the device tool's README)"; exit 1; }
fi

started=$(date +%s)
set +e
"$PY" -m pytest -m gpu tests/gpu -p no:cacheprovider -rs 2>&1 | tee "$OUT/gpu_tests.log" >&2
tests_rc=${PIPESTATUS[0]}
set -e
summary="$(grep -E '[0-9]+ (passed|failed|skipped)' "$OUT/gpu_tests.log" | tail -1 || true)"

# The MNIST CNN's epoch time on the GPU (examples/mnist_cnn_bn.yaml, 3 epochs, the fastest)
"$PY" -m trainlab train examples/mnist_cnn_bn.yaml --set train.device=cuda --set train.epochs=3 \
  --out "$OUT/cnn" --json --quiet > "$OUT/cnn.json" 2> "$OUT/cnn.err" || { cat "$OUT/cnn.err" >&2; }
# The seed MLP's parity ratio on the GPU (bench/parity.py: 5 repeats, 1 CPU thread, cuda)
"$PY" bench/parity.py 5 1 cuda > "$OUT/parity.txt" 2> "$OUT/parity.err" || { cat "$OUT/parity.err" >&2; }

"$PY" - "$OUT" "$tests_rc" "$summary" "$started" <<'PY'
import json, sys, time
from pathlib import Path
out, rc, summary, started = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
import torch
result = {"check": "gpu", "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
          "gpu_tests_rc": rc, "gpu_tests": summary}
history = out / "cnn" / "history.jsonl"
if history.is_file():
    rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    result["mnist_cnn_epoch_seconds"] = min(r.get("epoch_seconds", float("inf")) for r in rows)
    result["mnist_cnn_test_accuracy"] = json.loads((out / "cnn" / "metrics.json").read_text()).get(
        "test_accuracy")
lines = (out / "parity.txt").read_text().strip().splitlines() if (out / "parity.txt").is_file() else []
if lines:
    parity = json.loads(lines[-1])
    result.update(parity_time_ratio=parity["time_ratio"], parity_losses_equal=parity["losses_equal_5dp"])
result["seconds"] = int(time.time()) - started
print(json.dumps(result))
PY
exit "$tests_rc"
